package netconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBroker(t *testing.T) {
	tests := []struct {
		raw, broker, user, pass string
		secure                  bool
	}{
		{"mqtt://127.0.0.1:1883", "tcp://127.0.0.1:1883", "", "", false},
		{"tcp://h:1", "tcp://h:1", "", "", false},
		{"mqtts://dev1:s3cret@broker:8883", "ssl://broker:8883", "dev1", "s3cret", true},
		{"ssl://broker:8883", "ssl://broker:8883", "", "", true},
	}
	for _, tt := range tests {
		b, u, p, s, err := Broker(tt.raw)
		if err != nil || b != tt.broker || u != tt.user || p != tt.pass || s != tt.secure {
			t.Errorf("Broker(%s) = %s %s %s %v %v", Redact(tt.raw), b, u, p, s, err)
		}
	}
	for _, bad := range []string{"http://broker:80", "broker:1883", "mqtt://", "mqtts://dev1:s3cret@[::1"} {
		_, _, _, _, err := Broker(bad)
		if !errors.Is(err, ErrSettings) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Broker(%q) = %v, want a settings error without the password", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("mqtts://dev1:s3cret@broker:8883"); got != "mqtts://dev1:xxxxx@broker:8883" {
		t.Fatalf("Redact = %s", got)
	}
	if got := Redact("https://repo/x"); got != "https://repo/x" {
		t.Fatalf("Redact of a URL without password = %s", got)
	}
}

func TestLoadReadsSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	pw, tok := filepath.Join(dir, "pw"), filepath.Join(dir, "tok")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	os.WriteFile(tok, []byte("t0ken"), 0o600)
	c, err := Load(Files{PasswordFile: pw, TokenFile: tok}, "dev1")
	if err != nil || c.Password != "s3cret" || c.Token != "t0ken" || c.Username != "dev1" || c.TLS != nil {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	for name, f := range map[string]Files{
		"missing password file": {PasswordFile: filepath.Join(dir, "nope")},
		"CA that is no PEM":     {CA: pw},
		"cert without key":      {Cert: pw},
	} {
		if _, err := Load(f, ""); !errors.Is(err, ErrSettings) {
			t.Errorf("%s: Load = %v, want ErrSettings", name, err)
		}
	}
}
