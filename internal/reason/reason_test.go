package reason

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestTheCodeTravelsThroughWrapping(t *testing.T) {
	base := New(Latency, "probe latency %s over %s", "900ms", "200ms")
	err := fmt.Errorf("trial of v2: %w", base)
	if c, ok := Of(err); !ok || c != Latency {
		t.Fatalf("Of(%v) = %q, %v; want %q", err, c, ok, Latency)
	}
	if got, want := base.Error(), "latency_limit: probe latency 900ms over 200ms"; got != want {
		t.Fatalf("text %q, want %q", got, want)
	}
	if c := CodeOf(errors.New("no code"), Download); c != Download {
		t.Fatalf("CodeOf without a code = %q, want the fallback", c)
	}
}

func TestNewWrapsAndWrapKeepsAnExistingCode(t *testing.T) {
	e := New(Download, "fetch chunk: %w", io.ErrUnexpectedEOF)
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Fatalf("New lost the wrapped error: %v", e)
	}
	if c, _ := Of(Wrap(Verification, e)); c != Download {
		t.Fatalf("Wrap replaced an existing code: %q", c)
	}
	if Wrap(Manual, nil) != nil {
		t.Fatal("Wrap(nil) must stay nil")
	}
}

func TestOnlyManagerUnreachableBlamesNobody(t *testing.T) {
	for _, c := range All {
		if c.Blames() == (c == ManagerUnreachable) {
			t.Errorf("%s.Blames() = %v", c, c.Blames())
		}
	}
}
