package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelslot/modelslot/verify"
)

func TestInboxDedupesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	in, err := OpenInbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	c1 := Command{ID: "a", Action: ActionRollback, Model: "demo"}
	c2 := Command{ID: "b", Action: ActionInstall, Model: "demo", Source: "http://x/demo/channels/stable.json"}
	for _, c := range []Command{c1, c2, c1} {
		if _, err := in.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	seqs, cmds := in.Pending()
	if len(cmds) != 2 || cmds[0].ID != "a" || cmds[1].ID != "b" {
		t.Fatalf("pending = %+v", cmds)
	}
	in.Done(seqs[0])
	in.Done(seqs[1])

	again, err := OpenInbox(dir) // a restarted agent
	if err != nil {
		t.Fatal(err)
	}
	if added, _ := again.Add(c1); added {
		t.Fatal("a command id seen before the restart ran again")
	}
	if _, cmds := again.Pending(); len(cmds) != 0 {
		t.Fatalf("pending after restart = %+v", cmds)
	}
}

func TestInboxRejectsInvalidCommands(t *testing.T) {
	in, _ := OpenInbox(t.TempDir())
	for _, c := range []Command{
		{Action: ActionRollback, Model: "demo"},
		{ID: "x", Action: "reboot", Model: "demo"},
		{ID: "x", Action: ActionInstall, Model: "demo"},
		{ID: "x", Action: ActionRollback},
	} {
		if _, err := in.Add(c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestReplacedBy(t *testing.T) {
	cmds := []Command{
		{ID: "1", Action: ActionInstall, Model: "a"},
		{ID: "2", Action: ActionRollback, Model: "a"},
		{ID: "3", Action: ActionInstall, Model: "b"},
		{ID: "4", Action: ActionInstall, Model: "a"},
	}
	if got := replacedBy(cmds); got != 3 {
		t.Fatalf("replacedBy = %d, want 3 (the newer install of model a)", got)
	}
	if got := replacedBy(cmds[1:]); got != 0 {
		t.Fatal("a rollback must never be skipped")
	}
}

func TestPollerUsesETag(t *testing.T) {
	var hits, notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte(`[{"id":"p1","action":"rollback","model":"demo"},{"id":"p2","action":"mark-good","model":"demo"}]`))
	}))
	defer srv.Close()
	in, _ := OpenInbox(t.TempDir())
	p := commandPoller(srv.URL, 0, addTo(t, in))
	for range 3 {
		if err := p.poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if _, cmds := in.Pending(); len(cmds) != 2 || cmds[1].ID != "p2" {
		t.Fatalf("pending = %+v", cmds)
	}
	if hits.Load() != 3 || notModified.Load() != 2 {
		t.Fatalf("hits %d, 304s %d: the ETag was not sent back", hits.Load(), notModified.Load())
	}
}

func TestPollerRefusesGarbage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer srv.Close()
	in, _ := OpenInbox(t.TempDir())
	err := commandPoller(srv.URL, 0, addTo(t, in)).poll(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not a JSON list of commands") {
		t.Fatalf("poll = %v", err)
	}
}

func TestChannelPollerQueuesOneInstallPerPointer(t *testing.T) {
	var body atomic.Value
	body.Store(`{"version":"v1"}`)
	var notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := body.Load().(string)
		etag := `"` + b[12:14] + `"`
		if r.Header.Get("If-None-Match") == etag {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		w.Write([]byte(b))
	}))
	defer srv.Close()
	in, _ := OpenInbox(t.TempDir())
	p := channelPoller("demo", srv.URL, 0, in)
	for range 3 {
		p.poll(t.Context())
	}
	body.Store(`{"version":"v2"}`)
	p.poll(t.Context())
	p.etag = "" // a restarted agent: no ETag, same pointer → same id, no new command
	p.poll(t.Context())
	_, cmds := in.Pending()
	if len(cmds) != 2 || cmds[0].Source != srv.URL || cmds[0].Action != ActionInstall || cmds[0].ID == cmds[1].ID {
		t.Fatalf("pending = %+v, want one install per channel pointer", cmds)
	}
	if notModified.Load() != 2 {
		t.Fatalf("%d 304s: the ETag was not sent back", notModified.Load())
	}
}

// A channel document over the limit is refused whole, never cut short and
// taken for another pointer: nothing is queued.
func TestChannelPollerRefusesAnOversizedDocument(t *testing.T) {
	big := strings.Repeat("x", verify.MaxChannelEnvelope+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(big)) }))
	defer srv.Close()
	in, err := OpenInbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := channelPoller("demo", srv.URL, 0, in).poll(t.Context()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("poll of an oversized channel = %v, want a refusal", err)
	}
	if _, cmds := in.Pending(); len(cmds) != 0 {
		t.Fatalf("queued %+v from a refused document", cmds)
	}
}

// addTo queues each polled command as it comes (intake's checks are
// ParseCommand's, tested on their own).
func addTo(t *testing.T, in *Inbox) func([]byte) error {
	return func(b []byte) error {
		var c Command
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("polled %s: %v", b, err)
		}
		_, err := in.Add(c)
		return err
	}
}
