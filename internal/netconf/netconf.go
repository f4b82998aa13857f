// Package netconf turns the platform connection settings into what the
// clients need: a TLS config (CA file, client certificate), MQTT credentials
// and an HTTP bearer token, each secret read from a file of its own so it never
// sits in the config or on a command line. Redact hides a password in a URL;
// every message that names a URL passes it through Redact first.
package netconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// ErrSettings is the kind of every error about the settings themselves (a
// missing file, a bad certificate, an unknown scheme); the command line maps it
// to exit code 2 like any configuration error.
var ErrSettings = errors.New("platform connection settings")

// Files names the settings' files; empty fields are not used.
type Files struct {
	CA           string // PEM bundle of the CAs to trust (default: the system's)
	Cert, Key    string // client certificate and key (PEM)
	PasswordFile string // MQTT password
	TokenFile    string // HTTP bearer token
}

// Conn is the loaded connection settings.
type Conn struct {
	TLS      *tls.Config // nil: no CA or client certificate configured
	Username string
	Password string
	Token    string
}

// maxSecret bounds a password or token file.
const maxSecret = 4 << 10

// Load reads the files. username is the MQTT username (may be empty).
func Load(f Files, username string) (*Conn, error) {
	c := &Conn{Username: username}
	var err error
	if c.TLS, err = tlsConfig(f); err != nil {
		return nil, err
	}
	if c.Password, err = secret(f.PasswordFile, "password_file"); err != nil {
		return nil, err
	}
	if c.Token, err = secret(f.TokenFile, "token_file"); err != nil {
		return nil, err
	}
	return c, nil
}

func tlsConfig(f Files) (*tls.Config, error) {
	if f.CA == "" && f.Cert == "" && f.Key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: ca_file: %w", ErrSettings, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate", ErrSettings, f.CA)
		}
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%w: cert_file and key_file go together: set both or neither", ErrSettings)
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s: %w", ErrSettings, f.Cert, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func secret(name, setting string) (string, error) {
	if name == "" {
		return "", nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrSettings, setting, err)
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%w: %s %s is larger than %d bytes; it should hold one line", ErrSettings, setting, name, maxSecret)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// MQTTSchemes are the schemes an mqtt_url may have: mqtt:// (or tcp://) in
// plain text, mqtts:// (or ssl://) over TLS.
var MQTTSchemes = []string{"mqtt", "mqtts", "tcp", "ssl"}

// Broker splits an MQTT URL into what the client library takes: the broker
// address with a scheme it knows and without credentials, the credentials the
// URL carried (if any), and whether it is TLS.
func Broker(raw string) (broker, user, pass string, secure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", false, fmt.Errorf("%w: mqtt_url %s: %v", ErrSettings, Redact(raw), redactErr(err, raw))
	}
	switch u.Scheme {
	case "mqtt", "tcp":
		u.Scheme = "tcp"
	case "mqtts", "ssl":
		u.Scheme, secure = "ssl", true
	default:
		return "", "", "", false, fmt.Errorf("%w: mqtt_url %s: scheme %q: use mqtt:// or mqtts://", ErrSettings, Redact(raw), u.Scheme)
	}
	if u.Host == "" {
		return "", "", "", false, fmt.Errorf("%w: mqtt_url %s has no host", ErrSettings, Redact(raw))
	}
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
		u.User = nil
	}
	return u.String(), user, pass, secure, nil
}

// Redact hides the password in a URL ("user:xxxxx@host").
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactErr drops the URL's text from a parse error (it may hold the password).
func redactErr(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), raw, Redact(raw))
}
