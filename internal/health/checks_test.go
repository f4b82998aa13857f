package health

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestChecks(t *testing.T) {
	tests := []struct {
		name     string
		commands []string
		wantErr  string // "" means success
	}{
		{"all pass", []string{"true", "test \"$MODELSLOT_VERSION\" = v2"}, ""},
		{"first failure stops", []string{"echo broken >&2; exit 3", "touch /nonexistent/never"}, "check_failed: \"echo broken >&2; exit 3\": exit status 3; output: broken"},
		{"env reaches the check", []string{"test \"$MODELSLOT_VERSION\" = v1"}, "exit status 1"},
		{"timeout is a failure", []string{"sleep 10"}, "timed out after 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Checks{Commands: tt.commands, Timeout: 200 * time.Millisecond, Env: []string{"MODELSLOT_VERSION=v2"}}
			start := time.Now()
			err := c.Run(context.Background())
			if time.Since(start) > 5*time.Second {
				t.Fatalf("Run took %s: a timed-out check must not hang", time.Since(start))
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), ReasonCheckFailed+":") {
				t.Fatalf("error %q does not start with the failure reason", err)
			}
		})
	}
}
