// Package update runs the transaction of one update on one model's slot store:
// install into the inactive slot → activate (trial) → confirm → commit, or revert.
// It also resumes a trial that a crash interrupted and carries out rollback,
// mark-good and mark-bad. Every step is repeatable: running the same update twice
// changes nothing the second time.
package update
