package systemdtest

import (
	"testing"

	"github.com/modelslot/modelslot/internal/testutil"
)

// BuildService compiles ./testservice once per test process and returns the
// path of the executable (see its package doc for the flags).
func BuildService(t testing.TB) string {
	t.Helper()
	return testutil.Binary(t, "github.com/modelslot/modelslot/internal/systemdtest/testservice")
}
