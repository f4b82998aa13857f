package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/verify"
)

var keygenCommand = command{
	name:     "keygen",
	synopsis: []string{"--out PREFIX"},
	summary:  "make an ed25519 key pair for publishing",
	help: "Writes PREFIX.key, the private key (mode 0600: keep it off the devices), and PREFIX.pub, which devices list " +
		"in trusted_keys. docs/keys.md says how to rotate keys.",
	examples: []example{{"keygen --out keys/publisher", "writes keys/publisher.key and keys/publisher.pub"}},
	flags:    func(fs *flag.FlagSet) { keygenFlags(fs) },
	run:      runKeygen,
}

func keygenFlags(fs *flag.FlagSet) *string {
	return fs.String("out", "", "`PREFIX`: writes PREFIX.key (private, 0600) and PREFIX.pub")
}

func runKeygen(ctx context.Context, g *globalOptions, args []string) error {
	fs := newFlagSet("keygen", g)
	out := keygenFlags(fs.FlagSet)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return usageErrorf("usage: modelslot keygen --out PREFIX")
	}
	k, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := verify.WriteKeyPair(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s.key (keep it secret) and %s.pub (key id %s); devices trust it via trusted_keys\n", *out, *out, k.ID)
	return nil
}
