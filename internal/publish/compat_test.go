package publish

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// release01 is the last commit of main whose manifest code is modelslot 0.1's
// (schema 1 only), just before the schema-2 index landed.
const release01 = "7bf98f7"

// oldCheck opens a manifest envelope with a trusted key, as a device's install does
// before it downloads anything, and prints the error.
const oldCheck = `package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/verify"
)

func main() {
	env, _ := os.ReadFile(os.Args[1])
	pem, _ := os.ReadFile(os.Args[2])
	k, err := verify.ParsePublicKey(pem)
	if err != nil {
		panic(err)
	}
	_, err = verify.OpenManifest(env, verify.NewKeyring(k))
	fmt.Println(err)
	if errors.Is(err, verify.ErrRejected) {
		os.Exit(3)
	}
}
`

// TestModelslot01RefusesWhatPublishWrites builds 0.1's verify package from the
// repository's history and opens, with it, the manifest this publish writes:
// it must refuse it as an artifact rejection whose message says to upgrade.
func TestModelslot01RefusesWhatPublishWrites(t *testing.T) {
	git := testutil.NeedTool(t, "git", "git")
	if out, err := exec.Command(git, "cat-file", "-e", release01+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("commit %s (modelslot 0.1's verify) is not in this clone (%v %s): the test needs the full history", release01, err, out)
	}
	old := t.TempDir()
	archive := exec.Command(git, "archive", "--format=tar", release01, "verify", "go.mod", "go.sum")
	var tarball bytes.Buffer
	archive.Stdout, archive.Dir = &tarball, "../.."
	if err := archive.Run(); err != nil {
		t.Fatal(err)
	}
	untar := exec.Command("tar", "-x", "-C", old)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	write(t, old, "cmd/oldcheck/main.go", []byte(oldCheck))
	bin := filepath.Join(t.TempDir(), "oldcheck")
	build := exec.Command("go", "build", "-mod=mod", "-o", bin, "./cmd/oldcheck")
	build.Dir, build.Env = old, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build 0.1's verify: %v\n%s", err, out)
	}

	k, repo := testKey(t), t.TempDir()
	if _, err := Publish(context.Background(), modelDir(t, 1), opts(repo, "v1", k)); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "k")
	if err := verify.WriteKeyPair(pub, k); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, filepath.Join(repo, "demo/manifests/v1.json"), pub+".pub").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 ||
		!strings.Contains(string(out), "manifest schema 2: this modelslot understands 1 to 1; upgrade modelslot") {
		t.Fatalf("modelslot 0.1 opening a schema-2 manifest: %v, %q; want a rejection that says to upgrade", err, out)
	}
}
