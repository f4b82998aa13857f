package publish

import (
	"context"
	"fmt"
	"testing"

	"github.com/modelslot/modelslot/internal/chunkindex"
	"github.com/modelslot/modelslot/verify"
)

// Small files carry their bytes in the manifest, in manifest order while
// the budget lasts; a file over InlineMax, an empty file and the files past
// the budget do not; and the index still lists every inline file's chunks
// in packs, so a reader that ignores the field installs as before.
func TestSmallFilesAreInlineAndStillInTheIndex(t *testing.T) {
	k, repo, dir := testKey(t), t.TempDir(), t.TempDir()
	write(t, dir, "a/config.json", []byte(`{"layers": 4}`))
	write(t, dir, "a/empty", nil)
	write(t, dir, "a/max.bin", randomData(3, verify.InlineMax))
	write(t, dir, "a/over.bin", randomData(4, verify.InlineMax+1))
	// 16 more files of InlineMax: after config.json, max.bin and 14 of
	// them, the last two do not fit; a small file after them still does.
	for i := range verify.InlineBudget / verify.InlineMax {
		write(t, dir, fmt.Sprintf("b/%02d.bin", i), randomData(uint64(10+i), verify.InlineMax))
	}
	write(t, dir, "c/small.json", []byte(`{"a": 1}`))
	res, err := Publish(context.Background(), dir, opts(repo, "v1", k))
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, repo, "demo", "v1")
	var total int64
	for _, f := range m.Files {
		data := f.Inline()
		switch {
		case f.Path == "a/over.bin" || f.Path == "a/empty":
			if f.Data != "" {
				t.Errorf("%s (%d bytes) carries data", f.Path, f.Size)
			}
		case f.Path == "b/14.bin" || f.Path == "b/15.bin":
			if f.Data != "" {
				t.Errorf("%s carries data past the budget (%d bytes inline before it)", f.Path, total)
			}
		default:
			if int64(len(data)) != f.Size || f.Size == 0 {
				t.Errorf("%s (%d bytes) carries %d bytes inline, want all of it", f.Path, f.Size, len(data))
			}
		}
		total += int64(len(data))
	}
	if total > verify.InlineBudget || total < verify.InlineBudget-verify.InlineMax {
		t.Fatalf("%d bytes inline, want close to the %d budget without passing it", total, verify.InlineBudget)
	}
	if m.Files[0].Data == "" || res.Manifest.Files[0].Data != m.Files[0].Data {
		t.Fatal("the stored manifest is not the one Publish returned")
	}
	// The inline files' chunks are in the index and the packs, as before.
	mustInstallable(t, repo, m, dir)
	for _, f := range m.Files {
		if f.Data != "" && f.Index.Chunks < 1 {
			t.Fatalf("inline %s lists no chunks in the index", f.Path)
		}
	}
	if len(chunkindex.DerivedSection(m.Files[0])) == 0 {
		t.Fatal("config.json is one chunk, but its pinned section is not the one its manifest entry derives")
	}
}
