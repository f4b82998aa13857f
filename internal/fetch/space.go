package fetch

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Space says what the disk and the budget must allow; Check refuses before any
// download when they do not.
type Space struct {
	StagingDir string // the staging directory (it exists)
	SlotDir    string // a directory on the slots' filesystem, e.g. <state>/<model>/slots
	Reclaim    int64  // bytes freed before the slot is filled (the inactive slot's old files)
	Margin     int64  // bytes to leave free; 0 = DefaultMargin
	Budget     int64  // most bytes this update may download; 0 = no limit
}

// DefaultMargin keeps room for logs, the state file and the rest of the system.
const DefaultMargin = 64 << 20

// statfs is a seam: tests can fake a full disk without mounting one.
var statfs = unix.Statfs

// Check refuses the plan when it would exceed the budget or the free space. On
// one filesystem the install needs the model's size less what is staged
// already (staged files move into the slot by rename). On two, staging needs
// the files it assembles and the slot a copy of everything.
func (p *Plan) Check(sp Space) error {
	if sp.Budget > 0 && p.FetchBytes > sp.Budget {
		return fmt.Errorf("%w: %s %s needs %d bytes (%d chunks) downloaded, the budget is %d; raise the budget or install from a bundle",
			ErrOverBudget, p.Manifest.Model, p.Manifest.Version, p.FetchBytes, p.FetchChunks, sp.Budget)
	}
	if sp.Margin == 0 {
		sp.Margin = DefaultMargin
	}
	var st, ss unix.Statfs_t
	if err := statfs(sp.StagingDir, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", sp.StagingDir, err)
	}
	if err := statfs(sp.SlotDir, &ss); err != nil {
		return fmt.Errorf("free space of %s: %w", sp.SlotDir, err)
	}
	total := p.Manifest.TotalSize()
	staged := total - p.WholeSize - p.StagedSize // still to write into staging
	if st.Fsid == ss.Fsid {
		return enough(sp.StagingDir, avail(&st), staged+p.WholeSize-sp.Reclaim+sp.Margin,
			fmt.Sprintf("%d to stage, %d copied from the active slot, %d freed first", staged, p.WholeSize, sp.Reclaim))
	}
	if err := enough(sp.StagingDir, avail(&st), staged+sp.Margin, fmt.Sprintf("%d to stage", staged)); err != nil {
		return err
	}
	return enough(sp.SlotDir, avail(&ss), total-sp.Reclaim+sp.Margin, fmt.Sprintf("%d for the slot, %d freed first", total, sp.Reclaim))
}

func avail(s *unix.Statfs_t) int64 { return int64(s.Bavail) * int64(s.Bsize) }

func enough(dir string, have, need int64, what string) error {
	if need <= have {
		return nil
	}
	return fmt.Errorf("%w on %s: the update needs %d bytes (%s, plus a margin), %d are free; free %d bytes and try again — nothing was downloaded",
		ErrNoSpace, dir, need, what, have, need-have)
}
