package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelslot/modelslot/internal/testutil"
)

// tlsRepo serves the files of r over HTTPS, answering 401 to a request without
// the bearer token; it counts the requests that carried the token.
func tlsRepo(t *testing.T, r *repo, token string) (srv *httptest.Server, withToken *atomic.Int64) {
	withToken = &atomic.Int64{}
	files := http.FileServer(http.Dir(r.dir))
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		withToken.Add(1)
		files.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv, withToken
}

func trusting(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// A repository over HTTPS with a private CA and a bearer token: the install
// goes through with both, and fails clearly without the CA or the token.
func TestRepositoryOverHTTPSWithACAAndAToken(t *testing.T) {
	r := newRepo(t)
	r.publish(model(t, 1), "v1")
	srv, withToken := tlsRepo(t, r, "s3cret")
	url := srv.URL + "/demo/channels/stable.json"
	quick := ClientOptions{Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, StallTimeout: 2 * time.Second}

	good := quick
	good.TLS, good.Token = trusting(srv), "s3cret"
	c := NewClient(good)
	res, err := c.Resolve(context.Background(), url, r.trusted())
	if err != nil {
		t.Fatalf("resolve over HTTPS with the CA and the token: %v", err)
	}
	st, err := OpenStaging(t.TempDir())
	testutil.OK(t, err)
	p, err := NewPlan(context.Background(), res.Manifest, st, nil)
	testutil.OK(t, err)
	if err := c.Download(context.Background(), res.RepoURL, p, DownloadOptions{}); err != nil {
		t.Fatalf("download over HTTPS: %v", err)
	}
	if n := withToken.Load(); n < int64(2+len(p.Fetch)) {
		t.Fatalf("%d requests carried the token; want the channel, the manifest and every chunk", n)
	}

	noCA := quick
	noCA.Token = "s3cret"
	if _, err := NewClient(noCA).Resolve(context.Background(), url, r.trusted()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	noToken := quick
	noToken.TLS = trusting(srv)
	if _, err := NewClient(noToken).Resolve(context.Background(), url, r.trusted()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without the token: %v, want the server's 401", err)
	}
}

// The token goes to the repository's host only: a redirect to another host
// arrives without it.
func TestTokenIsNotSentToAnotherHost(t *testing.T) {
	var leaked, reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		reached.Store(true)
		if req.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		http.NotFound(w, req)
	}))
	defer other.Close()
	repoSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+req.URL.Path, http.StatusFound)
	}))
	defer repoSrv.Close()
	c := NewClient(ClientOptions{Retries: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Token: "s3cret"})
	_, err := c.Resolve(context.Background(), repoSrv.URL+"/demo/channels/stable.json", nil)
	if err == nil {
		t.Fatal("resolve through a redirect to a 404 succeeded")
	}
	if !reached.Load() {
		t.Fatal("the redirect was not followed: the test shows nothing")
	}
	if leaked.Load() {
		t.Fatal("the bearer token was sent to the host a redirect led to")
	}
}
