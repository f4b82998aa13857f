package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Secure is a broker that speaks only TLS (a CA made by the test), refuses
// anonymous clients, checks passwords, and applies an ACL file.
type Secure struct {
	Users map[string]string // username → password
	ACL   string            // mosquitto acl_file contents
	// CertUsers: clients log in with a certificate instead of a password
	// (require_certificate, use_identity_as_username); ClientCert makes one
	// for each of these names (its common name is the username).
	CertUsers []string
}

// NewSecure prepares a TLS broker with users and an ACL, without starting it.
// CAFile is the CA clients must trust.
func NewSecure(t *testing.T, s Secure) *Broker {
	t.Helper()
	b := New(t)
	dir := filepath.Dir(b.conf)
	b.CAFile = filepath.Join(dir, "ca.crt")
	cert, key, ca, caKey := makeCerts(t, dir, b.CAFile)
	b.clientCerts = map[string][2]string{}
	for _, u := range s.CertUsers {
		b.clientCerts[u] = makeClientCert(t, dir, u, ca, caKey)
	}
	pw, acl := filepath.Join(dir, "passwords"), filepath.Join(dir, "acl")
	if err := os.WriteFile(pw, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for user, pass := range s.Users {
		if out, err := exec.Command("mosquitto_passwd", "-b", pw, user, pass).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	if err := os.WriteFile(acl, []byte(s.ACL), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous false\nacl_file %s\npersistence false\nlog_dest none\n",
		b.Port, b.CAFile, cert, key, acl)
	if len(s.CertUsers) > 0 {
		conf += "require_certificate true\nuse_identity_as_username true\n"
	} else {
		conf += "password_file " + pw + "\n"
	}
	if os.Geteuid() == 0 {
		conf += "user root\n" // the files live in the test's private temp dir
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.scheme = "mqtts"
	return b
}

// makeCerts writes a CA (to caFile) and a server certificate for 127.0.0.1
// signed by it, and returns the server's certificate and key files and the CA.
func makeCerts(t *testing.T, dir, caFile string) (string, string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "modelslot test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	writePEM(t, cert, "CERTIFICATE", srvDER)
	writePEM(t, key, "EC PRIVATE KEY", keyDER)
	return cert, key, caCert, caKey
}

var serial atomic.Int64

// makeClientCert writes a client certificate for user (its common name)
// signed by the CA; it returns the certificate and key files.
func makeClientCert(t *testing.T, dir, user string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) [2]string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: user},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(k)
	files := [2]string{filepath.Join(dir, user+".crt"), filepath.Join(dir, user+".key")}
	writePEM(t, files[0], "CERTIFICATE", der)
	writePEM(t, files[1], "EC PRIVATE KEY", keyDER)
	return files
}

// ClientCert returns the certificate and key files made for user.
func (b *Broker) ClientCert(user string) (cert, key string) {
	f, ok := b.clientCerts[user]
	if !ok {
		b.t.Fatalf("no client certificate was made for %q (Secure.CertUsers)", user)
	}
	return f[0], f[1]
}

// ConnectWithCert connects to a certificate-checking broker as user, or with
// no certificate when user is empty, and returns the broker's verdict.
func ConnectWithCert(t *testing.T, b *Broker, id, user string) (mqtt.Client, error) {
	t.Helper()
	cfg := b.TLSConfig(t)
	if user != "" {
		cert, key := b.ClientCert(user)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	clients.Add(1)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", b.Port)).
		SetClientID(fmt.Sprintf("%s-%d", id, clients.Load())).SetTLSConfig(cfg).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect as %q: no answer", user)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TLSConfig trusts the broker's test CA.
func (b *Broker) TLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	pemData, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// ConnectAs connects to a secure broker as user (anonymous when empty) and
// returns the broker's verdict rather than failing the test.
func ConnectAs(t *testing.T, b *Broker, id, user, pass string) (mqtt.Client, error) {
	t.Helper()
	clients.Add(1)
	opts := mqtt.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", b.Port)).
		SetClientID(fmt.Sprintf("%s-%d", id, clients.Load())).SetUsername(user).SetPassword(pass).
		SetTLSConfig(b.TLSConfig(t)).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect as %q: no answer", user)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}
