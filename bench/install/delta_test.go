package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
)

// TestMain lets the test binary be the bench's install child: b.install runs
// this executable with -child, as the bench runs itself.
func TestMain(m *testing.M) {
	// As the bench: publish's and the child's progress lines are noise here.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "install:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDeltaTable runs every delta case at 8 MiB against the real nginx,
// casync and zsync, and checks the table is whole: each tool moved bytes and
// its requests were counted from the access log. Whether modelslot beats
// casync is the bench's goal line, reported, not asserted here.
func TestDeltaTable(t *testing.T) {
	for _, tool := range []struct{ cmd, pkg string }{
		{"nginx", "nginx"}, {"casync", "casync"}, {"zsync", "zsync"}, {"zsyncmake", "zsync"},
	} {
		testutil.NeedTool(t, tool.cmd, tool.pkg)
	}
	b, err := newBench(t.TempDir())
	testutil.OK(t, err)
	defer b.close()
	var out bytes.Buffer
	rows, err := b.deltaTable(&out, 8)
	testutil.OK(t, err)
	t.Log("\n" + out.String())
	if len(rows) != len(deltaCases) {
		t.Fatalf("%d rows for %d cases", len(rows), len(deltaCases))
	}
	for _, r := range rows {
		if r.changed <= 0 {
			t.Errorf("%s: changed bytes %d", r.name, r.changed)
		}
		if r.modelsl.err != nil || r.modelsl.Bytes <= 0 || r.modelsl.Requests <= 0 || r.modelsl.Errors != 0 {
			t.Errorf("%s: modelslot %+v", r.name, r.modelsl)
		}
		for _, tool := range baselines {
			if res := r.baseline[tool.name]; res.err != nil || res.Bytes <= 0 || res.Requests <= 0 {
				t.Errorf("%s: %s %+v", r.name, tool.name, res)
			}
		}
	}
	// A full fine-tune cannot cost less than its changed bytes (random data):
	// a count that misses requests would show here.
	ft := rows[6]
	if !strings.Contains(ft.name, "fine-tune") || ft.modelsl.Bytes < ft.changed {
		t.Errorf("%s: modelslot moved %d bytes for %d changed random bytes", ft.name, ft.modelsl.Bytes, ft.changed)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(deltaCases)+4 {
		t.Fatalf("table has %d lines, want title, header, separator, %d rows, goal", len(lines), len(deltaCases))
	}
	for i, l := range lines[1 : len(lines)-1] {
		if cells := strings.Split(strings.Trim(l, "| "), " | "); len(cells) != len(tableHeader) {
			t.Errorf("table line %d has %d cells, want %d: %s", i+2, len(cells), len(tableHeader), l)
		}
	}
	if goal := lines[len(lines)-1]; !strings.Contains(goal, "goal: modelslot <= casync's bytes") {
		t.Errorf("last line is not the goal line: %s", goal)
	}
}

func TestBetweenMarks(t *testing.T) {
	lines := []string{
		`200 999 "GET /before HTTP/1.1"`,
		`404 153 "GET /.bench-mark/1 HTTP/1.1"`,
		`200 1000 "GET /a HTTP/1.1"`,
		`206 24 "GET /b HTTP/1.1"`,
		`404 153 "GET /c HTTP/1.1"`,
		`404 153 "GET /.bench-mark/2 HTTP/1.1"`,
		`200 999 "GET /after HTTP/1.1"`,
	}
	got, err := between(lines, "1", "2")
	testutil.OK(t, err)
	if want := (traffic{Bytes: 1177, Requests: 3, Errors: 1}); got != want {
		t.Errorf("between marks: %+v, want %+v", got, want)
	}
	if _, err := between(lines, "1", "3"); err == nil {
		t.Error("a missing end mark was not an error")
	}
	if _, err := between([]string{`404 1 "GET /.bench-mark/1 HTTP/1.1"`, `- x "GET /"`}, "1", "2"); err == nil {
		t.Error("a line that is not status, bytes, request was not an error")
	}
}

// TestGGUFLayout reads back what writeGGUF wrote, as llama.cpp's gguf reader
// does: magic, version, counts, every key/value, tensor infos, and checks
// general.alignment is what the tensor offsets and the data section obey.
func TestGGUFLayout(t *testing.T) {
	name := filepath.Join(t.TempDir(), "m.gguf")
	data, err := ggufModel(name, 8<<20, 100, true, 3)
	testutil.OK(t, err)
	f, err := os.Open(name)
	testutil.OK(t, err)
	defer f.Close()
	st, err := f.Stat()
	testutil.OK(t, err)
	r := &ggufReader{t: t, r: f}
	if m, v := r.u32(), r.u32(); m != ggufMagic || v != 3 {
		t.Fatalf("magic %#x version %d", m, v)
	}
	tensors, kvs := r.u64(), r.u64()
	if tensors != 32 || kvs != 6 {
		t.Fatalf("%d tensors, %d keys; want 32, 6", tensors, kvs)
	}
	var align uint32
	for range kvs {
		key, kind := r.str(), r.u32()
		switch kind {
		case ggufUint32:
			v := r.u32()
			if key == "general.alignment" {
				align = v
			}
		case ggufString:
			r.str()
		case ggufArray:
			if et := r.u32(); et != ggufString {
				t.Fatalf("%s: array of type %d", key, et)
			}
			for range r.u64() {
				r.str()
			}
		default:
			t.Fatalf("key %s: type %d", key, kind)
		}
	}
	if align != 32 {
		t.Fatalf("general.alignment %d, want 32", align)
	}
	var end uint64
	for i := range tensors {
		r.str()
		if dims := r.u32(); dims != 1 {
			t.Fatalf("tensor %d: %d dims", i, dims)
		}
		n, typ, off := r.u64(), r.u32(), r.u64()
		if typ != ggmlTypeF32 || off%uint64(align) != 0 || off < end {
			t.Fatalf("tensor %d: type %d offset %d (previous end %d)", i, typ, off, end)
		}
		end = off + 4*n
	}
	if want := alignUp(r.n, int64(align)); data != want {
		t.Errorf("data section at %d, want %d (header end %d aligned to %d)", data, want, r.n, align)
	}
	if st.Size() != data+alignUp(int64(end), int64(align)) {
		t.Errorf("file is %d bytes, want %d", st.Size(), data+int64(end))
	}
}

type ggufReader struct {
	t *testing.T
	r io.Reader
	n int64
}

func (g *ggufReader) read(p []byte) {
	g.t.Helper()
	if _, err := io.ReadFull(g.r, p); err != nil {
		g.t.Fatalf("gguf at %d: %v", g.n, err)
	}
	g.n += int64(len(p))
}

func (g *ggufReader) u32() uint32 {
	var b [4]byte
	g.read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}
func (g *ggufReader) u64() uint64 {
	var b [8]byte
	g.read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
func (g *ggufReader) str() string {
	b := make([]byte, g.u64())
	g.read(b)
	return string(b)
}
