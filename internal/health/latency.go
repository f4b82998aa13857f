package health

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/modelslot/modelslot/internal/reason"
)

// Kinds of probe errors that confirmation decides on (errors.Is); the error
// text stays the reason's text.
var (
	// errNotReady: nothing answers yet, or the answer came from another
	// version (a reload takes a moment after its job ends). Retried until the
	// start timeout.
	errNotReady = errors.New("the version under trial does not answer yet")
	// errNoAnswerInTime: the request's own timeout cut it short.
	errNoAnswerInTime = errors.New("the probe was not answered in time")
)

// marked is an error that also is each of kinds, with its text unchanged.
type marked struct {
	error
	kinds []error
}

func mark(err error, kinds ...error) error { return marked{err, kinds} }

func (m marked) Is(target error) bool { return slices.Contains(m.kinds, target) }
func (m marked) Unwrap() error        { return m.error }

// latencyJudge decides whether the median of n timed samples is over limit
// while they come in. The median is the sorted sample n/2 (the upper one for
// even n), so it is over the limit once n-n/2 samples are, and within it once
// n/2+1 are: the remaining samples cannot change the verdict, and are not
// sent. Without a limit every sample is taken (only their errors count).
type latencyJudge struct {
	n     int
	limit time.Duration
	over  []string // the samples over the limit, for the failure text
	under int
}

func newLatencyJudge(n int, limit time.Duration) *latencyJudge {
	return &latencyJudge{n: n, limit: limit}
}

// add counts one sample; answered is false for a request cut short at took.
func (j *latencyJudge) add(took time.Duration, answered bool) {
	switch {
	case !answered:
		j.over = append(j.over, "no answer within "+took.Round(time.Millisecond).String())
	case j.limit > 0 && took > j.limit:
		j.over = append(j.over, took.Round(time.Millisecond).String())
	default:
		j.under++
	}
}

func (j *latencyJudge) decided() bool {
	if j.limit <= 0 {
		return j.under+len(j.over) >= j.n
	}
	return len(j.over) >= j.n-j.n/2 || j.under >= j.n/2+1
}

// verdict is nil or the latency_limit failure.
func (j *latencyJudge) verdict() error {
	if j.limit <= 0 || len(j.over) < j.n-j.n/2 {
		return nil
	}
	return reason.New(ReasonLatencyLimit, "probe latency over %s: %d of %d timed samples took longer (%s), so their median does", j.limit, len(j.over), j.n, strings.Join(j.over, ", "))
}
