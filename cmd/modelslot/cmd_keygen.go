package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"

	"github.com/modelslot/modelslot/internal/cli"
	"github.com/modelslot/modelslot/verify"
)

var keygenCommand = cli.Command{
	Name:     "keygen",
	Synopsis: []string{"--out PREFIX"},
	Summary:  "make an ed25519 key pair for publishing",
	Help: "Writes PREFIX.key, the private key (mode 0600: keep it off the devices), and PREFIX.pub, which devices list " +
		"in trusted_keys. docs/keys.md says how to rotate keys.",
	Examples: []cli.Example{{Cmd: "keygen --out keys/publisher", What: "writes keys/publisher.key and keys/publisher.pub"}},
	Flags:    func(fs *flag.FlagSet) { keygenFlags(fs) },
	Run:      runKeygen,
}

func keygenFlags(fs *flag.FlagSet) *string {
	return fs.String("out", "", "`PREFIX`: writes PREFIX.key (private, 0600) and PREFIX.pub")
}

func runKeygen(ctx context.Context, g *cli.Options, args []string) error {
	fs := cli.NewFlagSet("keygen", g)
	out := keygenFlags(fs.FlagSet)
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		return cli.UsageErrorf("usage: modelslot keygen --out PREFIX")
	}
	k, err := verify.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := verify.WriteKeyPair(*out, k); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "wrote %s.key (keep it secret) and %s.pub (key id %s); devices trust it via trusted_keys\n", *out, *out, k.ID)
	return nil
}
