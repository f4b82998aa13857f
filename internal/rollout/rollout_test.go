package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelslot/modelslot/verify"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testKey(t testing.TB, seed byte) *verify.PrivateKey {
	t.Helper()
	k, err := verify.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func validRollout() *Rollout {
	return &Rollout{
		Schema: Schema, ID: "r1", Revision: 1, Model: "demo", Channel: "stable",
		Target: Target{Version: "v2", Sequence: 2, ManifestURL: "http://127.0.0.1:1/repo/demo/manifests/v2.json",
			ManifestSHA256: strings.Repeat("ab", 32)},
		Salt: "salt-1",
		Stages: []Stage{
			{Share: 2000, MinSoak: Duration(time.Second), Success: 10000, MaxFailures: 1},
			{Share: 5000, MinSoak: Duration(time.Second), Success: 9000, MaxFailureShare: 1000},
			{Share: 10000, Success: 9000, MaxFailures: 3, MaxFailureShare: 500},
		},
		State: StateRunning, AbortRollback: true,
		IssuedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

func TestValidateRefusesBadDocuments(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Rollout)
		want   string
	}{
		{"schema from the future", func(r *Rollout) { r.Schema = 2 }, "schema 2"},
		{"no id", func(r *Rollout) { r.ID = "" }, "id"},
		{"id with a slash", func(r *Rollout) { r.ID = "a/b" }, "id"},
		{"bad model", func(r *Rollout) { r.Model = "Demo!" }, "model"},
		{"bad channel", func(r *Rollout) { r.Channel = "" }, "channel"},
		{"no target version", func(r *Rollout) { r.Target.Version = "" }, "target"},
		{"bad digest", func(r *Rollout) { r.Target.ManifestSHA256 = "xyz" }, "manifest_sha256"},
		{"manifest URL not http", func(r *Rollout) { r.Target.ManifestURL = "file:///etc/passwd" }, "manifest_url"},
		{"no salt", func(r *Rollout) { r.Salt = "" }, "salt"},
		{"no stages", func(r *Rollout) { r.Stages = nil }, "0 stages"},
		{"too many stages", func(r *Rollout) {
			r.Stages = nil
			for i := range MaxStages + 1 {
				r.Stages = append(r.Stages, Stage{Share: uint32(i + 1), Success: 1, MaxFailures: 1})
			}
		}, "stages: want 1 to"},
		{"shrinking share", func(r *Rollout) { r.Stages[1].Share = 1000 }, "cumulative"},
		{"equal share", func(r *Rollout) { r.Stages[1].Share = 2000 }, "cumulative"},
		{"share over 100%", func(r *Rollout) { r.Stages[2].Share = 10001 }, "cumulative"},
		{"zero share", func(r *Rollout) { r.Stages[0].Share = 0 }, "cumulative"},
		{"no success threshold", func(r *Rollout) { r.Stages[0].Success = 0 }, "success threshold"},
		{"no failure threshold", func(r *Rollout) { r.Stages[0].MaxFailures = 0 }, "no failure threshold"},
		{"negative failures", func(r *Rollout) { r.Stages[0].MaxFailures = -1 }, "out of range"},
		{"negative soak", func(r *Rollout) { r.Stages[0].MinSoak = -1 }, "min_soak"},
		{"unknown state", func(r *Rollout) { r.State = "done" }, "state"},
		{"stage past the end", func(r *Rollout) { r.Stage = 3 }, "stage 3"},
		{"negative stage", func(r *Rollout) { r.Stage = -1 }, "stage -1"},
		{"no issue time", func(r *Rollout) { r.IssuedAt = time.Time{} }, "issued_at"},
		{"expiry before issue", func(r *Rollout) { r.ExpiresAt = r.IssuedAt }, "expiry after issue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout()
			tt.change(r)
			err := r.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrInvalid about %q", err, tt.want)
			}
		})
	}
	if err := validRollout().Validate(); err != nil {
		t.Fatalf("the valid rollout: %v", err)
	}
}

func TestOpenAcceptsAFreshDocumentForWhatTheDeviceFollows(t *testing.T) {
	k := testKey(t, 1)
	env, err := Sign(validRollout(), k)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(env, verify.NewKeyring(k.Public()), Expect{Model: "demo", Channel: "stable", Now: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "r1" || r.Target.Version != "v2" || len(r.Stages) != 3 || time.Duration(r.Stages[0].MinSoak) != time.Second {
		t.Fatalf("round trip lost fields: %+v", r)
	}
}

func TestOpenRefusesWithTypedReasons(t *testing.T) {
	k, stranger, publisher := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	trusted := verify.NewKeyring(k.Public())
	good, _ := Sign(validRollout(), k)
	byStranger, _ := Sign(validRollout(), stranger)
	manifest, _ := verify.Sign(verify.PayloadManifest, []byte(`{}`), k)
	unknownField, _ := verify.Sign(verify.PayloadRollout, []byte(`{"schema":1,"extra":true}`), k)
	want := Expect{Model: "demo", Channel: "stable", Now: t0.Add(time.Minute)}
	tests := []struct {
		name   string
		env    []byte
		keys   verify.Keyring
		expect func(*Expect)
		kind   error
		reason string
	}{
		{"signed by an unknown key", byStranger, trusted, nil, ErrUnknownKey, ReasonUnknownKey},
		{"signed by the publisher key, not a rollout key", good, verify.NewKeyring(publisher.Public()), nil, ErrUnknownKey, ReasonUnknownKey},
		{"a manifest passed off as a rollout", manifest, trusted, nil, ErrInvalid, ReasonInvalid},
		{"unknown field", unknownField, trusted, nil, ErrInvalid, ReasonInvalid},
		{"not an envelope", []byte("{"), trusted, nil, ErrInvalid, ReasonInvalid},
		{"oversized", bytes.Repeat([]byte(" "), MaxSize+1), trusted, nil, ErrInvalid, ReasonInvalid},
		{"another model", good, trusted, func(e *Expect) { e.Model = "other" }, ErrWrongTarget, ReasonWrongTarget},
		{"another channel", good, trusted, func(e *Expect) { e.Channel = "beta" }, ErrWrongTarget, ReasonWrongTarget},
		{"expired beyond the slack", good, trusted, func(e *Expect) { e.Now = t0.Add(time.Hour + DefaultSkew + time.Second) }, ErrStale, ReasonStale},
		{"issued in the future beyond the slack", good, trusted, func(e *Expect) { e.Now = t0.Add(-DefaultSkew - time.Second) }, ErrStale, ReasonStale},
		{"expired beyond a custom slack", good, trusted, func(e *Expect) { e.Now = t0.Add(time.Hour + 2*time.Second); e.Skew = time.Second }, ErrStale, ReasonStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := want
			if tt.expect != nil {
				tt.expect(&e)
			}
			_, err := Open(tt.env, tt.keys, e)
			if !errors.Is(err, tt.kind) || !errors.Is(err, ErrRefused) || Reason(err) != tt.reason {
				t.Fatalf("Open = %v (reason %q), want %v (%s)", err, Reason(err), tt.kind, tt.reason)
			}
		})
	}
}

func TestOpenAllowsClockSkewWithinTheSlack(t *testing.T) {
	k := testKey(t, 1)
	env, _ := Sign(validRollout(), k)
	for _, now := range []time.Time{t0.Add(-DefaultSkew + time.Second), t0.Add(time.Hour + DefaultSkew - time.Second)} {
		if _, err := Open(env, verify.NewKeyring(k.Public()), Expect{Model: "demo", Channel: "stable", Now: now}); err != nil {
			t.Fatalf("at %s: %v", now, err)
		}
	}
}

func TestOpenRefusesATamperedDocument(t *testing.T) {
	k := testKey(t, 1)
	env, _ := Sign(validRollout(), k)
	// Flip the stage the payload says it reached; the signature no longer holds.
	other := validRollout()
	other.Stage = 2
	forged, _ := Sign(other, testKey(t, 2))
	mixed := bytes.Replace(env, payloadOf(t, env), payloadOf(t, forged), 1)
	_, err := Open(mixed, verify.NewKeyring(k.Public()), Expect{Model: "demo", Channel: "stable", Now: t0})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("Open of a tampered rollout = %v, want a bad signature", err)
	}
}

func payloadOf(t *testing.T, env []byte) []byte {
	e, err := verify.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(e.Payload)
}

func TestCheckNewerRefusesReplays(t *testing.T) {
	held := validRollout()
	held.Revision = 5
	older, same, newer := *held, *held, *held
	older.Revision, newer.Revision = 4, 6
	earlier, later := *held, *held
	earlier.ID, earlier.IssuedAt = "r0", held.IssuedAt.Add(-time.Second)
	later.ID, later.IssuedAt = "r2", held.IssuedAt.Add(time.Second)
	for _, tt := range []struct {
		r     *Rollout
		stale bool
	}{{&older, true}, {&same, false}, {&newer, false}, {&earlier, true}, {&later, false}} {
		if err := tt.r.CheckNewer(held); errors.Is(err, ErrStale) != tt.stale {
			t.Errorf("%s rev %d: CheckNewer = %v, want stale %v", tt.r.ID, tt.r.Revision, err, tt.stale)
		}
	}
	if err := held.CheckNewer(nil); err != nil {
		t.Fatalf("nothing held: %v", err)
	}
}

func TestCohortsAreStableNestedAndNearTheirShare(t *testing.T) {
	r := validRollout()
	const n = 10000
	counts := make([]int, len(r.Stages)+1)
	for i := range n {
		id := fmt.Sprintf("edge-%05d", i)
		s := r.StageOf(id)
		if s != r.StageOf(id) {
			t.Fatalf("%s: stage changed between two calls", id)
		}
		counts[s+1]++
		// A device in stage s is in the cohort once stage s opened, never before.
		for opened := range r.Stages {
			r.Stage = opened
			if r.InCohort(id) != (s <= opened) {
				t.Fatalf("%s of stage %d: InCohort with stage %d opened = %v", id, s, opened, !(s <= opened))
			}
		}
		r.Stage = 0
	}
	// Stage shares 20 %, +30 %, +50 %, nobody outside the last (100 %) stage.
	want := []int{0, 2000, 3000, 5000}
	for i, c := range counts {
		if d := c - want[i]; d > 250 || d < -250 {
			t.Fatalf("stage %d holds %d of %d devices, want about %d", i-1, c, n, want[i])
		}
	}
	if counts[0] != 0 {
		t.Fatalf("%d devices outside a 100%% last stage", counts[0])
	}
}

func TestCohortsDependOnTheSalt(t *testing.T) {
	moved := 0
	for i := range 1000 {
		id := fmt.Sprintf("edge-%04d", i)
		if Bucket(id, "a") != Bucket(id, "b") {
			moved++
		}
	}
	if moved < 990 {
		t.Fatalf("only %d of 1000 buckets changed with the salt", moved)
	}
	// The buckets are pinned: a change of the hash would move devices between
	// cohorts when a device and its controller run different releases.
	if a, b := Bucket("edge-001", "salt-1"), Bucket("edge-002", "salt-1"); a != 1088 || b != 7691 {
		t.Fatalf("Bucket = %d, %d; want 1088, 7691 (sha256(salt NUL id), first 8 bytes mod 10000)", a, b)
	}
}
