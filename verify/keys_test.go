package verify

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
)

func TestWriteKeyPairRoundTrip(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "publisher")
	k := testKey(t, 7)
	if err := WriteKeyPair(prefix, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(prefix + ".key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	got, err := ReadPrivateKeyFile(prefix + ".key")
	if err != nil || got.ID != k.ID {
		t.Fatalf("ReadPrivateKeyFile = %v, %v; want key %s", got, err, k.ID)
	}
	ring, err := LoadKeyring([]string{prefix + ".pub"})
	if err != nil || ring[k.ID].ID != k.ID {
		t.Fatalf("LoadKeyring = %v, %v; want key %s", ring, err, k.ID)
	}
}

func TestWriteKeyPairRefusesToOverwrite(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "publisher")
	if err := WriteKeyPair(prefix, testKey(t, 1)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(prefix + ".key")
	if err := WriteKeyPair(prefix, testKey(t, 2)); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second WriteKeyPair = %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(prefix + ".key"); string(after) != string(before) {
		t.Fatal("the first private key was overwritten")
	}
}

func TestKeyFilesRefuseWrongKinds(t *testing.T) {
	k := testKey(t, 1)
	pub, _ := MarshalPublicKey(k.Public())
	if _, err := ParsePrivateKey(pub); err == nil || !strings.Contains(err.Error(), `want "PRIVATE KEY"`) {
		t.Fatalf("ParsePrivateKey(public) = %v", err)
	}
	if _, err := ParsePublicKey([]byte("not pem")); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Fatalf("ParsePublicKey(garbage) = %v", err)
	}
	if _, err := LoadKeyring(nil); err == nil {
		t.Fatal("an empty trusted_keys list must be an error")
	}
	if _, err := LoadKeyring([]string{filepath.Join(t.TempDir(), "missing.pub")}); err == nil {
		t.Fatal("a missing key file must be an error")
	}
}

// TestKeyIDMatchesOpenSSL checks the documented recipe in docs/keys.md.
func TestKeyIDMatchesOpenSSL(t *testing.T) {
	testutil.NeedTool(t, "openssl", "openssl")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "o.key")
	if out, err := exec.Command("openssl", "genpkey", "-algorithm", "ed25519", "-out", keyFile).CombinedOutput(); err != nil {
		testutil.Missing(t, "openssl cannot make ed25519 keys (Debian 12's openssl can): %v %s", err, out)
	}
	k, err := ReadPrivateKeyFile(keyFile)
	if err != nil {
		t.Fatalf("an openssl ed25519 key must be readable: %v", err)
	}
	cmd := exec.Command("sh", "-c", "openssl pkey -in "+keyFile+" -pubout -outform DER | sha256sum")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out))[0]; got != k.ID {
		t.Fatalf("openssl key id %s, ours %s", got, k.ID)
	}
}
