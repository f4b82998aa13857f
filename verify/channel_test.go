package verify

import (
	"errors"
	"strings"
	"testing"
)

func validChannel() *Channel {
	return &Channel{Schema: 1, Model: "demo", Channel: "stable", Version: "v1", Sequence: 3,
		Manifest: "manifests/v1.json", ManifestSHA256: digestA}
}

func TestChannelRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	env, err := SignChannel(validChannel(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenChannel(env, NewKeyring(k.Public()))
	if err != nil || *c != *validChannel() {
		t.Fatalf("OpenChannel = %+v, %v", c, err)
	}
	if err := c.CheckManifest(validManifest()); err != nil {
		t.Fatalf("the manifest the channel names was refused: %v", err)
	}
}

func TestChannelIsNotAManifest(t *testing.T) {
	k := testKey(t, 1)
	env, _ := SignChannel(validChannel(), k)
	if _, err := OpenManifest(env, NewKeyring(k.Public())); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "wrong payload type") {
		t.Fatalf("a channel pointer opened as a manifest: %v", err)
	}
}

func TestChannelRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Channel)
		want   string
	}{
		{"manifest elsewhere", func(c *Channel) { c.Manifest = "../../other/manifests/v1.json" }, "channel points at"},
		{"bad digest", func(c *Channel) { c.ManifestSHA256 = "x" }, "64 lower-case hex"},
		{"bad channel name", func(c *Channel) { c.Channel = "a/b" }, "channel name"},
		{"newer schema", func(c *Channel) { c.Schema = 9 }, "upgrade modelslot"},
	}
	for _, tt := range tests {
		c := validChannel()
		tt.change(c)
		if err := c.Validate(); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
	m := validManifest()
	m.Sequence = 2 // an older manifest replayed under a newer pointer
	if err := validChannel().CheckManifest(m); !errors.Is(err, ErrRejected) {
		t.Fatalf("CheckManifest of a different sequence = %v", err)
	}
}
