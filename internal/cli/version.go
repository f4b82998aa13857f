package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time by the Makefile for both binaries: -ldflags "-X
// github.com/modelslot/modelslot/internal/cli.version=0.1.0 -X
// github.com/modelslot/modelslot/internal/cli.commit=3f2a9c1d7e4b". version
// is the release tag without its v (a build after it: 0.1.0-3-g3f2a9c1), else
// the VERSION file.
var (
	version = ""
	commit  = ""
)

func runVersion(ctx context.Context, g *Options, args []string) error {
	if err := ParseFlags(NewFlagSet("version", g), args); err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, g.prog.versionString())
	return nil
}

// versionString is "PROGRAM VERSION (commit C, GO OS/ARCH)". A build without
// the Makefile's flags (go build, go test) says devel and takes the commit
// from the build's VCS stamp.
func (p *Program) versionString() string {
	return fmt.Sprintf("%s %s (commit %s, %s %s/%s)", p.Name, buildVersion(), buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func buildCommit() string {
	if commit != "" {
		return commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	return rev + dirty
}
