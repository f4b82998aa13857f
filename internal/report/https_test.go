package report

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestHTTPSinkOverHTTPSWithAToken: the sink trusts the CA it is given (and no
// other), and sends the bearer token with every event.
func TestHTTPSinkOverHTTPSWithAToken(t *testing.T) {
	var authorized atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authorized.Add(1)
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	ev := []*Event{{EventID: "e1", Sequence: 1, Status: StatusSuccess}}

	if _, err := NewHTTPSink(srv.URL, HTTPOptions{Token: "t0ken"}).Send(context.Background(), ev); err == nil {
		t.Fatal("the sink trusted a server certificate outside its CAs")
	}
	if _, err := NewHTTPSink(srv.URL, HTTPOptions{TLS: &tls.Config{RootCAs: pool}}).Send(context.Background(), ev); err == nil {
		t.Fatal("an event without the token was acknowledged")
	}
	n, err := NewHTTPSink(srv.URL, HTTPOptions{TLS: &tls.Config{RootCAs: pool}, Token: "t0ken"}).Send(context.Background(), ev)
	if err != nil || n != 1 || authorized.Load() != 1 {
		t.Fatalf("Send with the CA and the token = %d, %v (authorized %d)", n, err, authorized.Load())
	}
}
