package fetch

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/testutil"
)

// Nothing is created or deleted through a link (#12: clearing staging once
// deleted the target of a planted staging/ link). Staging works beneath the
// directory it opened: the staging directory swapped for a link after that
// is never followed (and a new OpenStaging refuses it); a link at work/, or
// anywhere inside it, is removed by Clear as a link, and what it points to
// keeps everything.
func TestStagingClearNeverFollowsALink(t *testing.T) {
	for _, planted := range []string{"", "work", "work/0123456789abcdef", "work/0123456789abcdef/files", "work/0123456789abcdef/journal"} {
		t.Run("link at staging/"+planted, func(t *testing.T) {
			outside := t.TempDir()
			sum := testutil.SentinelTree(t, outside)
			dir := filepath.Join(t.TempDir(), "staging")
			s, err := OpenStaging(dir)
			testutil.OK(t, err)
			defer s.Close()
			testutil.OK(t, os.MkdirAll(filepath.Join(dir, "work", "0123456789abcdef", "files"), 0o755))
			testutil.OK(t, os.WriteFile(filepath.Join(dir, "work", "0123456789abcdef", "journal"), nil, 0o644))
			link := filepath.Join(dir, filepath.FromSlash(planted))
			testutil.OK(t, os.RemoveAll(link))
			testutil.OK(t, os.Symlink(outside, link))
			if planted == "" || planted == "work" {
				if _, err := OpenStaging(dir); !errors.Is(err, durable.ErrUnsafe) {
					t.Fatalf("OpenStaging through a link = %v, want ErrUnsafe", err)
				}
			}
			err = s.Clear()
			switch {
			case planted == "" && err == nil:
				// The opened directory was deleted (RemoveAll above): Clear
				// cannot make work/ in it, and must not make it in the link.
				t.Fatal("Clear of a deleted staging directory succeeded")
			case planted != "" && err != nil:
				t.Fatalf("Clear with a link at %s = %v", planted, err)
			case planted != "":
				if _, err := os.Lstat(link); planted != "work" && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the link at %s after Clear: %v, want it removed", planted, err)
				}
				if fi, err := os.Lstat(filepath.Join(dir, "work")); err != nil || !fi.IsDir() {
					t.Fatalf("work/ after Clear: %v, %v; want a real directory", fi, err)
				}
			}
			if got := testutil.TreeHash(t, outside); got != sum {
				t.Fatalf("the link's target changed:\n%s\nwant:\n%s", got, sum)
			}
		})
	}
}
