package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	bundlefmt "github.com/modelslot/modelslot/internal/bundle"
	"github.com/modelslot/modelslot/internal/publish"
	"github.com/modelslot/modelslot/internal/testutil"
	"github.com/modelslot/modelslot/verify"
)

// Hostile local files (#12): each test plants one thing in the state
// directory, checks the refusal names it, that a sentinel tree outside the
// state directory is byte for byte the same, and that once the planted thing
// is moved aside, v1 still serves and verifies.

// bundleEnv is a device that trusts a key and runs v1 installed from a
// bundle; v2 is a bundle file of the same key, ready to install.
type bundleEnv struct {
	*env
	key      *verify.PrivateKey
	v2       string // the v2 bundle file
	sentinel string // a directory outside the state directory
	sum      string // its TreeHash before the test acts
}

func newBundleEnv(t *testing.T) *bundleEnv {
	t.Helper()
	k, err := verify.GenerateKey(rand.Reader)
	testutil.OK(t, err)
	pub := filepath.Join(t.TempDir(), "publisher")
	testutil.OK(t, verify.WriteKeyPair(pub, k))
	e := newEnv(t)
	e.extraConf = fmt.Sprintf("trusted_keys = [%q]\n", pub+".pub")
	e.writeConfig()
	repo := t.TempDir()
	bundle := func(version string, sizes ...int) string {
		out := filepath.Join(t.TempDir(), version+".mslot")
		_, err := publish.CreateBundle(context.Background(), out, makeModel(t, sizes...),
			publish.Options{Repo: repo, Model: "demo", Version: version, Key: k})
		testutil.OK(t, err)
		return out
	}
	e.must(0, "install", bundle("v1", 200<<10, 3000))
	b := &bundleEnv{env: e, key: k, v2: bundle("v2", 600<<10, 400<<10, 5000), sentinel: t.TempDir()}
	b.sum = testutil.SentinelTree(t, b.sentinel)
	return b
}

func (b *bundleEnv) stateDir(elem ...string) string {
	return filepath.Join(append([]string{b.root, "demo"}, elem...)...)
}

// untouched fails the test when anything under the sentinel changed.
func (b *bundleEnv) untouched() {
	b.t.Helper()
	if got := testutil.TreeHash(b.t, b.sentinel); got != b.sum {
		b.t.Fatalf("the tree outside the state directory changed:\nbefore:\n%s\nafter:\n%s", b.sum, got)
	}
}

// servesV1 checks v1 is active, consistent and verifies.
func (b *bundleEnv) servesV1() {
	b.t.Helper()
	if got := b.checkInvariants(); got != "v1" {
		b.t.Fatalf("active %q, want v1", got)
	}
	b.must(0, "verify")
}

func wantStderr(t *testing.T, r result, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Fatalf("want %q in the error, got %v", p, r)
		}
	}
}

// Case 1: staging/ replaced by a link. Before the fix, setup wrote into the
// link's target and clearing staging after the install deleted its work/.
func TestHostileStagingLinkIsRefusedAndNothingOutsideChanges(t *testing.T) {
	b := newBundleEnv(t)
	staging := b.stateDir("staging")
	testutil.OK(t, os.RemoveAll(staging))
	testutil.OK(t, os.Symlink(b.sentinel, staging))
	for _, args := range [][]string{{"install", b.v2}, {"status"}, {"verify"}, {"recover"}} {
		r := b.must(exitError, args...)
		wantStderr(t, r, staging+" is a symbolic link", "move it aside")
	}
	b.untouched()
	testutil.OK(t, os.Remove(staging)) // what the message asks for
	b.servesV1()
	b.must(0, "install", b.v2) // and the next install works again
	b.untouched()
}

// The other entries of the state directory that modelslot owns: a link, a
// FIFO or a device in their place is refused naming it, and never followed.
func TestHostileStateEntriesAreRefused(t *testing.T) {
	tests := []struct {
		name  string
		entry string // under the state directory
		plant func(b *bundleEnv, p string)
		want  string
	}{
		{"slots dir is a link", "slots", linkToSentinel, "is a symbolic link"},
		{"outbox is a link", "outbox", linkToSentinel, "is a symbolic link"},
		{"inactive slot is a link", "slots/b", linkToSentinel, "is a symbolic link"},
		{"slot temp dir is a link", "slots/.b.tmp", linkToSentinel, "is a symbolic link"},
		{"state.json is a link", "state.json", linkToSentinelFile, "is a symbolic link"},
		{"state.json is a FIFO", "state.json", mkfifo, "a FIFO, not a regular file"},
		{"lock is a FIFO", "lock", mkfifo, "a FIFO, not a regular file"},
		{"state.json is a device", "state.json", mknull, "a character device, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBundleEnv(t)
			p := b.stateDir(filepath.FromSlash(tt.entry))
			saved := p + ".saved"
			if _, err := os.Lstat(p); err == nil {
				testutil.OK(t, os.Rename(p, saved))
			}
			tt.plant(b, p)
			for _, args := range [][]string{{"install", b.v2}, {"status"}} {
				r := b.must(exitError, args...)
				wantStderr(t, r, p, tt.want)
			}
			b.untouched()
			testutil.OK(t, os.Remove(p))
			if _, err := os.Lstat(saved); err == nil {
				testutil.OK(t, os.Rename(saved, p))
			}
			b.servesV1()
		})
	}
}

func linkToSentinel(b *bundleEnv, p string) { testutil.OK(b.t, os.Symlink(b.sentinel, p)) }
func linkToSentinelFile(b *bundleEnv, p string) {
	testutil.OK(b.t, os.Symlink(filepath.Join(b.sentinel, "keep.txt"), p))
}
func mkfifo(b *bundleEnv, p string) { testutil.OK(b.t, syscall.Mkfifo(p, 0o644)) }
func mknull(b *bundleEnv, p string) {
	testutil.NeedRoot(b.t, "mknod of a device node")
	testutil.OK(b.t, syscall.Mknod(p, syscall.S_IFCHR|0o644, int(1<<8|3))) // 1:3 is /dev/null
}

// Case 2: the active slot replaced by a link to a copy holding an extra
// file. The walk did not enter the linked root and each listed file checked
// out through it, so verify passed.
func TestHostileVerifyRefusesSlotLinkedToCopyWithExtraFile(t *testing.T) {
	b := newBundleEnv(t)
	slot := b.stateDir("slots", "a")
	copyDir := filepath.Join(b.sentinel, "copy")
	if out, err := exec.Command("cp", "-a", slot, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	testutil.OK(t, os.WriteFile(filepath.Join(copyDir, "extra.bin"), []byte("smuggled"), 0o444))
	b.sum = testutil.TreeHash(t, b.sentinel)
	aside := filepath.Join(t.TempDir(), "a")
	testutil.OK(t, os.Rename(slot, aside))
	testutil.OK(t, os.Symlink(copyDir, slot))

	r := b.must(exitError, "verify")
	wantStderr(t, r, slot+" is a symbolic link")
	b.untouched()

	testutil.OK(t, os.Remove(slot))
	testutil.OK(t, os.Rename(aside, slot))
	b.servesV1()
}

// A real slot directory with files the manifest does not list: verify names
// every one of them and exits 3.
func TestHostileVerifyNamesEveryExtraFile(t *testing.T) {
	b := newBundleEnv(t)
	slot := b.stateDir("slots", "a")
	testutil.OK(t, os.Chmod(slot, 0o755))
	for _, n := range []string{"extra1.bin", "zz/extra2.bin"} {
		testutil.OK(t, os.MkdirAll(filepath.Dir(filepath.Join(slot, n)), 0o755))
		testutil.OK(t, os.WriteFile(filepath.Join(slot, n), []byte("x"), 0o444))
	}
	r := b.must(exitRejected, "verify")
	wantStderr(t, r, "extra1.bin", "zz/extra2.bin", "2 extra files")
	testutil.OK(t, os.Remove(filepath.Join(slot, "extra1.bin")))
	testutil.OK(t, os.RemoveAll(filepath.Join(slot, "zz")))
	b.servesV1()
}

// Case 3: state.json replaced by a FIFO blocked status and install in
// open(2), and no signal ended them. Now the FIFO is refused at once, without
// waiting for a writer.
func TestHostileFIFOStateEndsStatusAndInstallAtOnce(t *testing.T) {
	b := newBundleEnv(t)
	state := b.stateDir("state.json")
	saved := filepath.Join(t.TempDir(), "state.json")
	testutil.OK(t, os.Rename(state, saved))
	testutil.OK(t, syscall.Mkfifo(state, 0o644))
	for _, args := range [][]string{{"status"}, {"install", b.v2}, {"verify"}} {
		start := time.Now()
		r := b.must(exitError, args...)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%v took %s with a FIFO for state.json", args, d)
		}
		wantStderr(t, r, state+" is a FIFO, not a regular file")
	}
	b.untouched()
	testutil.OK(t, os.Remove(state))
	testutil.OK(t, os.Rename(saved, state))
	b.servesV1()
}

// Case 3, signals: SIGINT and SIGTERM end an install whose bundle stream
// stopped halfway — `install -` with stdin a pipe, or `install FIFO` — within
// 2 s, with 130 and 143, and the next install finishes the job.
func TestSignalEndsInstallFromStalledStream(t *testing.T) {
	for _, source := range []string{"stdin", "fifo"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(source+"/"+unix.SignalName(sig), func(t *testing.T) {
				b := newBundleEnv(t)
				cmd, w := b.startStalledInstall(source)
				start := time.Now()
				testutil.OK(t, cmd.Process.Signal(sig))
				r := waitWithin(t, cmd, 2*time.Second)
				w.Close()
				if want := 128 + int(sig); r.code != want || r.signal != 0 {
					t.Fatalf("want exit %d after %v, got %v (after %s)", want, sig, r, time.Since(start))
				}
				b.untouched()
				b.servesV1()
				b.must(0, "install", b.v2) // resumable: the next install completes
				if got := b.checkInvariants(); got != "v2" {
					t.Fatalf("active %q after the second install, want v2", got)
				}
			})
		}
	}
}

// startStalledInstall starts an install of v2 from a pipe (stdin, or a FIFO
// named as SOURCE), writes half the bundle — the manifest and some chunks —
// and waits until the child has read it all and waits for more. It returns
// the writing end, still open: the stream stalls, it does not end.
func (b *bundleEnv) startStalledInstall(source string) (*exec.Cmd, *os.File) {
	t := b.t
	data, err := os.ReadFile(b.v2)
	testutil.OK(t, err)
	var cmd *exec.Cmd
	var w *os.File
	fifo := filepath.Join(t.TempDir(), "v2.mslot")
	if source == "stdin" {
		cmd = b.command(nil, "install", "-")
		pr, pw, err := os.Pipe()
		testutil.OK(t, err)
		cmd.Stdin, w = pr, pw
		defer pr.Close() // the child has its own copy
	} else {
		testutil.OK(t, syscall.Mkfifo(fifo, 0o600))
		cmd = b.command(nil, "install", fifo)
	}
	cmd.Stdout, cmd.Stderr = new(bytes.Buffer), new(bytes.Buffer)
	testutil.OK(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })
	if source == "fifo" {
		w, err = os.OpenFile(fifo, os.O_WRONLY, 0) // returns once the child opened it
		testutil.OK(t, err)
	}
	_, err = w.Write(data[:len(data)/2])
	testutil.OK(t, err)
	waitDrained(t, w, cmd.Process.Pid)
	return cmd, w
}

// waitWithin waits for cmd and fails the test if it runs past d.
func waitWithin(t *testing.T, cmd *exec.Cmd, d time.Duration) result {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return resultOf(cmd, err, cmd.Stdout.(*bytes.Buffer).String(), cmd.Stderr.(*bytes.Buffer).String(), t)
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end within %s of the signal", cmd.Args, d)
		return result{}
	}
}

// waitDrained waits until the child has read everything written to the pipe
// w (FIONREAD on either end counts the bytes in the pipe) and sleeps, so the
// signal lands on the stall, not before it.
func waitDrained(t *testing.T, w *os.File, pid int) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "install to drain its stdin", func() bool {
		n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
		return err == nil && n == 0 && processSleeping(pid)
	})
	time.Sleep(300 * time.Millisecond) // what was read last is being written to staging
}

func processSleeping(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] == "S"
}

// Case 7: a 300-byte path element was exit 1 from the staging filesystem
// ("file name too long"); bidi overrides were accepted and logged raw; a
// sequence of 2^64-1 was accepted. All are exit 3 at policy time now, before
// anything is written. The manifests are signed by the trusted key, so only
// the policy stands in the way.
func TestHostileManifestsAreRefusedAtPolicyTime(t *testing.T) {
	tests := []struct {
		name string
		path string
		seq  uint64
		want string
	}{
		{"300-byte element", "w/" + strings.Repeat("w", 300) + ".bin", 2, "more than the 255"},
		{"bidi override", "weights\u202enib.exe", 2, "U+202E"},
		{"zero-width space", "wei\u200bghts.bin", 2, "U+200B"},
		{"sequence 2^64-1", "weights.bin", 1<<64 - 1, "sequence 18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBundleEnv(t)
			m := &verify.Manifest{Schema: verify.SchemaVersion, Model: "demo", Version: "v2", Sequence: tt.seq,
				Files: []verify.File{{Path: tt.path, Size: 1, Mode: 0o644, SHA256: strings.Repeat("ab", 32)}}}
			bundle := b.envelopeOnlyBundle(m)
			before := b.stateSum()
			r := b.must(exitRejected, "install", bundle)
			wantStderr(t, r, "rejected", tt.want)
			if after := b.stateSum(); after != before {
				t.Fatalf("a refused install changed the state directory:\n%s\nwant:\n%s", after, before)
			}
			b.untouched()
			b.servesV1()
		})
	}
}

// stateSum is what a refused command must not change: state.json and the
// slots (the lock file's holder note is rewritten by every command).
func (b *bundleEnv) stateSum() string {
	state, err := os.ReadFile(b.stateDir("state.json"))
	testutil.OK(b.t, err)
	return string(state) + testutil.TreeHash(b.t, b.stateDir("slots"))
}

// envelopeOnlyBundle is a bundle holding m signed by the trusted key and no
// chunk: the manifest is judged before any chunk is read.
func (b *bundleEnv) envelopeOnlyBundle(m *verify.Manifest) string {
	b.t.Helper()
	payload, err := json.Marshal(m)
	testutil.OK(b.t, err)
	env, err := verify.Sign(verify.PayloadManifest, payload, b.key)
	testutil.OK(b.t, err)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	testutil.OK(b.t, tw.WriteHeader(&tar.Header{Name: bundlefmt.EnvelopeName, Mode: 0o644, Size: int64(len(env)), Typeflag: tar.TypeReg}))
	_, err = tw.Write(env)
	testutil.OK(b.t, err)
	testutil.OK(b.t, tw.Close())
	out := filepath.Join(b.t.TempDir(), "hostile"+bundlefmt.Ext)
	testutil.OK(b.t, os.WriteFile(out, buf.Bytes(), 0o644))
	return out
}
