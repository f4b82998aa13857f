package verify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// PEM block types of the key files (docs/keys.md). They are the standard ones, so
// `openssl genpkey -algorithm ed25519` makes a usable private key and
// `openssl pkey -pubout` its public key.
const (
	pemPrivate = "PRIVATE KEY" // PKCS #8
	pemPublic  = "PUBLIC KEY"  // PKIX (SubjectPublicKeyInfo)
)

// maxKeyFile bounds a key file before it is read: a real one is under 200 bytes.
const maxKeyFile = 64 << 10

// PublicKey is an ed25519 key a device trusts, with its key id.
type PublicKey struct {
	ID  string // KeyID of Key
	Key ed25519.PublicKey
}

// PrivateKey is a publisher's ed25519 signing key.
type PrivateKey struct {
	ID  string // KeyID of the public half
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k *PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// KeyID is the lower-case hex sha256 of the key's PKIX DER encoding — the bytes
// inside the .pub file's PEM block, so `openssl pkey -pubin -outform DER | sha256sum`
// prints the same id.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for a key of the wrong length, which the callers never pass
		panic(fmt.Sprintf("verify: marshal ed25519 public key: %v", err))
	}
	h := NewHash()
	h.Write(der)
	return HexDigest(h.Sum(nil))
}

// GenerateKey makes a new signing key from rnd (crypto/rand when nil).
func GenerateKey(rnd io.Reader) (*PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return &PrivateKey{ID: KeyID(pub), Key: priv}, nil
}

// MarshalPrivateKey encodes k as a PEM "PRIVATE KEY" block (PKCS #8).
func MarshalPrivateKey(k *PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// MarshalPublicKey encodes k as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(k PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" block holding an ed25519 key.
func ParsePrivateKey(data []byte) (*PrivateKey, error) {
	der, err := pemBody(data, pemPrivate)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T; modelslot signs with ed25519 only", k)
	}
	return &PrivateKey{ID: KeyID(priv.Public().(ed25519.PublicKey)), Key: priv}, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding an ed25519 key.
func ParsePublicKey(data []byte) (PublicKey, error) {
	der, err := pemBody(data, pemPublic)
	if err != nil {
		return PublicKey{}, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return PublicKey{}, fmt.Errorf("public key is %T; modelslot verifies ed25519 only", k)
	}
	return PublicKey{ID: KeyID(pub), Key: pub}, nil
}

func pemBody(data []byte, typ string) ([]byte, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("no PEM block found; want %q (see docs/keys.md)", typ)
	}
	if b.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q (see docs/keys.md)", b.Type, typ)
	}
	return b.Bytes, nil
}

// ReadPrivateKeyFile reads a private key file written by WriteKeyPair or openssl.
func ReadPrivateKeyFile(name string) (*PrivateKey, error) {
	data, err := readKeyFile(name)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	return k, nil
}

// Keyring is the set of public keys a device trusts, by key id.
type Keyring map[string]PublicKey

// NewKeyring returns a keyring holding keys.
func NewKeyring(keys ...PublicKey) Keyring {
	r := make(Keyring, len(keys))
	for _, k := range keys {
		r[k.ID] = k
	}
	return r
}

// IDs lists the key ids, sorted, for messages.
func (r Keyring) IDs() []string {
	ids := make([]string, 0, len(r))
	for id := range r {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// LoadKeyring reads the public key files of a model's trusted_keys. A missing
// or unreadable file is an error: silently trusting fewer keys than configured
// would turn a typo into "nothing verifies" far from its cause.
func LoadKeyring(names []string) (Keyring, error) {
	if len(names) == 0 {
		return nil, errors.New("no trusted keys configured: set trusted_keys to the publisher's .pub files")
	}
	r := Keyring{}
	for _, name := range names {
		data, err := readKeyFile(name)
		if err != nil {
			return nil, err
		}
		k, err := ParsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", name, err)
		}
		r[k.ID] = k
	}
	return r, nil
}

func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", name, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key %s: larger than %d bytes; not a key file", name, maxKeyFile)
	}
	return data, nil
}

// WriteKeyPair writes k to PREFIX.key (mode 0600) and its public half to
// PREFIX.pub (0644). It refuses to overwrite either file: replacing a signing key
// by accident would orphan every device that trusts the old one.
func WriteKeyPair(prefix string, k *PrivateKey) error {
	priv, err := MarshalPrivateKey(k)
	if err != nil {
		return err
	}
	pub, err := MarshalPublicKey(k.Public())
	if err != nil {
		return err
	}
	prefix = strings.TrimSuffix(prefix, ".key")
	if err := writeNew(prefix+".key", priv, 0o600); err != nil {
		return err
	}
	if err := writeNew(prefix+".pub", pub, 0o644); err != nil {
		os.Remove(prefix + ".key") // a private key without its public half is only confusing
		return err
	}
	return nil
}

func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write key: %w (choose another --out or move the old file away)", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("write key %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("write key %s: %w", name, err)
	}
	return f.Close()
}
