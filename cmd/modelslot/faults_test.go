package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelslot/modelslot/internal/crashpoint"
	"github.com/modelslot/modelslot/internal/testutil"
)

// mountTmpfs mounts a tmpfs of the given size for one test: a real filesystem
// that can fill up or be made read-only.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	testutil.NeedRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func TestDiskFullDuringInstallKeepsActiveSlot(t *testing.T) {
	fsDir := mountTmpfs(t, "6m")
	e := newEnvAt(t, filepath.Join(fsDir, "state"), filepath.Join(fsDir, "demo"))
	m1, m2 := makeModel(t, 1<<20), makeModel(t, 2<<20, 2<<20, 2<<20)
	installV1(e, m1, m2)
	r := e.must(exitError, installV2(m1, m2)...)
	if !strings.Contains(r.stderr, "no space left on device") || !strings.Contains(r.stderr, "the active version was not touched") {
		t.Fatalf("want a disk-full message with a hint, got:\n%s", r.stderr)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q, want v1", got)
	}
	if b := e.status().Slots["b"]; b.Status != "empty" {
		t.Fatalf("slot b = %+v after a failed install, want empty", b)
	}
	assertNoTemps(t, filepath.Join(fsDir, "state", "demo", "slots"))
}

func TestReadOnlyStateDirRefusesInstallButShowsStatus(t *testing.T) {
	fsDir := mountTmpfs(t, "16m")
	e := newEnvAt(t, filepath.Join(fsDir, "state"), filepath.Join(fsDir, "demo"))
	m1, m2 := makeModel(t, 4096), makeModel(t, 8192)
	installV1(e, m1, m2)
	if out, err := exec.Command("mount", "-o", "remount,ro", fsDir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("mount", "-o", "remount,rw", fsDir).Run() })
	r := e.must(exitError, installV2(m1, m2)...)
	if !strings.Contains(r.stderr, "read-only file system") || !strings.Contains(r.stderr, "remount it read-write") {
		t.Fatalf("want a read-only message with a hint, got:\n%s", r.stderr)
	}
	if got := e.checkInvariants(); got != "v1" {
		t.Fatalf("active %q, want v1", got)
	}
	e.must(0, "verify")
}

func TestLinkInMissingDirectoryIsRefusedBeforeAnyChange(t *testing.T) {
	base := t.TempDir()
	e := newEnvAt(t, filepath.Join(base, "state"), filepath.Join(base, "srv", "demo"))
	m1, m2 := makeModel(t, 100), makeModel(t, 200)
	installV1(e, m1, m2)
	before := readState(t, e)

	e.link = filepath.Join(base, "missing", "dir", "demo")
	e.writeConfig()
	r := e.must(exitError, installV2(m1, m2)...)
	if !strings.Contains(r.stderr, filepath.Join(base, "missing", "dir")) || !strings.Contains(r.stderr, "create it or change `link`") {
		t.Fatalf("want the missing directory named with what to do, got:\n%s", r.stderr)
	}
	if !bytes.Equal(before, readState(t, e)) {
		t.Fatal("state.json changed although the install was refused")
	}
}

func TestVerifyNamesChangedFileInActiveSlot(t *testing.T) {
	e := newEnv(t)
	m1 := makeModel(t, 1000, 2000)
	installV1(e, m1, "")
	e.must(0, "verify")
	victim := filepath.Join(e.link, "layer00", "w01.bin")
	if err := os.Chmod(victim, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(victim, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 10)
	b[0] ^= 0xff // flipped: the content is random, a fixed byte would match it one time in 256
	f.WriteAt(b, 10)
	f.Close()
	os.Chmod(victim, 0o444)
	r := e.must(exitRejected, "verify")
	if !strings.Contains(r.stderr, "layer00/w01.bin") || !strings.Contains(r.stderr, "content changed") {
		t.Fatalf("verify must name the changed file, got:\n%s", r.stderr)
	}
}

func TestVerifyCatchesEditedManifest(t *testing.T) {
	e := newEnv(t)
	installV1(e, makeModel(t, 10), "")
	name := filepath.Join(e.link, ".modelslot", "manifest.json")
	os.Chmod(name, 0o644)
	b, _ := os.ReadFile(name)
	os.WriteFile(name, bytes.Replace(b, []byte(`"v1"`), []byte(`"v9"`), 1), 0o444)
	r := e.must(exitRejected, "verify")
	if !strings.Contains(r.stderr, "manifest.json") || !strings.Contains(r.stderr, "changed since install") {
		t.Fatalf("verify must report the edited manifest, got:\n%s", r.stderr)
	}
}

func TestSecondConcurrentInstallIsBusy(t *testing.T) {
	e := newEnv(t)
	m1, m2 := makeModel(t, 100), makeModel(t, 300, 400)
	installV1(e, m1, m2)
	first := e.command([]string{crashpoint.EnvVar + "=install.after-first-file:stop"}, installV2(m1, m2)...)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, first.Process.Pid)

	r := e.must(exitBusy, installV2(m1, m2)...)
	if !strings.Contains(r.stderr, fmt.Sprintf("pid %d (install v2", first.Process.Pid)) {
		t.Fatalf("busy message must name the holder, got:\n%s", r.stderr)
	}
	st := e.status() // status still answers, from the saved state
	if st.Busy == "" || *st.ActiveVersion != "v1" {
		t.Fatalf("status while busy = %+v", st)
	}

	first.Process.Signal(syscall.SIGCONT)
	if err := first.Wait(); err != nil {
		t.Fatalf("first install after SIGCONT: %v\n%s", err, firstOut.String())
	}
	if got := e.checkInvariants(); got != "v2" {
		t.Fatalf("active %q, want v2", got)
	}
}

func TestCorruptStateIsRefusedAndLeftAsItIs(t *testing.T) {
	for name, corrupt := range map[string]func([]byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)/2] },
		"empty":         func([]byte) []byte { return nil },
		"garbage":       func([]byte) []byte { return []byte("{\n\"format\": 1,\n  oops\n}") },
		"unknown field": func(b []byte) []byte { return bytes.Replace(b, []byte(`"format"`), []byte(`"formatt"`), 1) },
		"bad status":    func(b []byte) []byte { return bytes.Replace(b, []byte(`"good"`), []byte(`"great"`), 1) },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			installV1(e, makeModel(t, 10), "")
			file := filepath.Join(e.root, "demo", "state.json")
			bad := corrupt(readState(t, e))
			if err := os.WriteFile(file, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"status"}, {"rollback"}, installV2("", makeModel(t, 20))} {
				r := e.must(exitError, args...)
				if !strings.Contains(r.stderr, "state.json") || !strings.Contains(r.stderr, "left as it is") || !strings.Contains(r.stderr, "docs/recovery.md") {
					t.Fatalf("%v: want a clear refusal, got:\n%s", args, r.stderr)
				}
			}
			if got, _ := os.ReadFile(file); !bytes.Equal(got, bad) {
				t.Fatal("state.json was changed; it must be left for the operator")
			}
			if _, err := os.Stat(filepath.Join(e.root, "demo", "slots", "a", ".modelslot", "manifest.json")); err != nil {
				t.Fatalf("the active slot was touched: %v", err)
			}
		})
	}
}

func TestGarbageStateNamesTheLine(t *testing.T) {
	e := newEnv(t)
	installV1(e, makeModel(t, 10), "")
	os.WriteFile(filepath.Join(e.root, "demo", "state.json"), []byte("{\n\"format\": 1,\n  oops\n}"), 0o644)
	if r := e.must(exitError, "status"); !strings.Contains(r.stderr, "line 3") {
		t.Fatalf("want the line of the syntax error, got:\n%s", r.stderr)
	}
}

func TestMissingStateWithSlotsIsRefused(t *testing.T) {
	e := newEnv(t)
	installV1(e, makeModel(t, 10), "")
	os.Remove(filepath.Join(e.root, "demo", "state.json"))
	r := e.must(exitError, "status")
	if !strings.Contains(r.stderr, "state.json is missing") || !strings.Contains(r.stderr, "will not guess") {
		t.Fatalf("want a refusal naming what exists, got:\n%s", r.stderr)
	}
}

func readState(t *testing.T, e *env) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "demo", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertNoTemps(t *testing.T, slotsDir string) {
	t.Helper()
	entries, _ := os.ReadDir(slotsDir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".") {
			t.Errorf("temp entry %s left in %s", en.Name(), slotsDir)
		}
	}
}
