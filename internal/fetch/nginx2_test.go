package fetch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/nginxtest"
)

// A format-2 repository served by Debian's nginx, as a static server or CDN
// origin serves one: a full install in few Range requests, then a delta in
// one, counted by nginx's own access log.
func TestFormat2InstallFromNginx(t *testing.T) {
	r := newRepo2(t)
	dir := bigModel(t, 1, 3<<20)
	m1 := r.publish2(dir, "v1")
	ng := nginxtest.Start(t, r.dir)
	url := ng.URL + "/demo/channels/stable.json"
	const cap = 1 << 20
	lowerRangeCap(t, cap)
	out1, p, fill, err := install2(t, fastClient(), url, r.trusted(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	full := ng.Under("/packs/")
	limit := int((p.FetchBytes+cap-1)/cap) + len(m1.Files)
	if len(full) == 0 || len(full) > limit || fill.adopted != len(m1.Files) {
		t.Fatalf("full install: %d pack requests (want 1 to %d), %d files adopted: %+v", len(full), limit, fill.adopted, full)
	}
	var sent int64
	for _, q := range full {
		if q.Status != 206 || !strings.HasPrefix(q.Range, "bytes=") {
			t.Fatalf("a pack request that was not a 206 Range answer: %+v", q)
		}
		sent += q.Bytes
	}
	if sent != p.FetchBytes {
		t.Fatalf("nginx sent %d pack bytes, the plan fetches %d", sent, p.FetchBytes)
	}

	w, _ := os.ReadFile(filepath.Join(dir, "weights.bin"))
	copy(w[2<<20:], randomBytes(100<<10, 7))
	writeFile(t, dir, "weights.bin", w)
	r.publish2(dir, "v2")
	_, p2, _, err := install2(t, fastClient(), url, r.trusted(), r.asSlot(t, out1, m1), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	delta := ng.Under("/packs/")[len(full):]
	if len(delta) != 1 || delta[0].Bytes != p2.FetchBytes || p2.FetchBytes > 300<<10 {
		t.Fatalf("delta of 100 KiB: %+v; %s", delta, p2.Summary())
	}
}

// The hostile cases that are files on the server, served by nginx.
func TestFormat2HostileFilesOnNginx(t *testing.T) {
	cases := []struct {
		name   string
		damage func(h *hostile2)
		kind   error
		want   string
	}{
		{"corrupt frame", func(h *hostile2) {
			b, _ := os.ReadFile(h.r.packFile(h.pack))
			l := h.locs[len(h.locs)/2]
			b[l.Offset+uint64(l.CSize)/2] ^= 0x55
			os.WriteFile(h.r.packFile(h.pack), b, 0o644)
		}, ErrDownload, "pack bytes"},
		{"truncated pack", func(h *hostile2) {
			fi, _ := os.Stat(h.r.packFile(h.pack))
			os.Truncate(h.r.packFile(h.pack), fi.Size()*2/3)
		}, ErrDownload, "shorter than its locations say"},
		{"missing pack", func(h *hostile2) { os.Remove(h.r.packFile(h.pack)) }, ErrNotFound, "HTTP 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHostile2(t)
			h.url = nginxtest.Start(t, h.r.dir).URL + "/demo/channels/stable.json"
			c.damage(h)
			_, err := h.install(t)
			wantErr(t, err, c.kind, c.want)
			h.activeStillServes(t)
		})
	}
}
