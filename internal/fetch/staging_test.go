package fetch

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelslot/modelslot/internal/durable"
	"github.com/modelslot/modelslot/internal/testutil"
)

// Nothing is created or deleted through a link: a staging directory, or its
// work/, that became a link after it was opened makes Clear refuse, and the
// link's target keeps its work/ (#12: clearing staging once deleted it).
func TestStagingClearNeverFollowsALink(t *testing.T) {
	for _, planted := range []string{"", "work"} {
		t.Run("link at staging/"+planted, func(t *testing.T) {
			outside := t.TempDir()
			sum := testutil.SentinelTree(t, outside)
			dir := filepath.Join(t.TempDir(), "staging")
			s, err := OpenStaging(dir)
			testutil.OK(t, err)
			link := filepath.Join(dir, planted)
			testutil.OK(t, os.RemoveAll(link))
			testutil.OK(t, os.Symlink(outside, link))
			if err := s.Clear(); !errors.Is(err, durable.ErrUnsafe) {
				t.Fatalf("Clear through a link = %v, want ErrUnsafe", err)
			}
			if _, err := OpenStaging(dir); !errors.Is(err, durable.ErrUnsafe) {
				t.Fatalf("OpenStaging through a link = %v, want ErrUnsafe", err)
			}
			if got := testutil.TreeHash(t, outside); got != sum {
				t.Fatalf("the link's target changed:\n%s\nwant:\n%s", got, sum)
			}
		})
	}
}
