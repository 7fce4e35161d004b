package kubevirt

import (
	"fmt"
	"math"
	"time"
)

// Unlimited is the transfer rate assumed for a bandwidth of 0 ("no limit"):
// 10 GiB/s, a fast migration network.
const Unlimited = 10 << 30

// Outcome is how the data transfer of one migration attempt ends, and when,
// counted from the start of the transfer (phase Running), in simulated time.
type Outcome struct {
	Succeeds bool
	After    time.Duration
	Aborted  bool   // aborted by a timeout, as virt-launcher does
	Reason   string // why it fails; empty on success
}

// Transfer describes one migration attempt's data transfer.
type Transfer struct {
	Bytes           int64 // guest memory to copy
	DirtyRate       int64 // bytes per second the guest writes
	Settings        MigrationSettings
	ProgressTimeout time.Duration
	FailAttempt     bool // inject a failure into this attempt
}

// Plan decides the outcome of a transfer. Pre-copy sends the memory while the
// guest keeps dirtying it, so the data left shrinks at bandwidth − dirty rate:
// the transfer takes bytes / (bandwidth − dirty rate). When the dirty rate
// reaches the bandwidth it never converges and, as in virt-launcher, the
// progress timeout (no progress for that long) or the completion timeout
// (completionTimeoutPerGiB × GiB) aborts it, whichever comes first. A policy
// allowing auto-converge or post-copy always converges.
func (t Transfer) Plan() Outcome {
	bw := t.Settings.Bandwidth
	if bw <= 0 {
		bw = Unlimited
	}
	rate := bw - t.DirtyRate
	if t.Settings.AllowConvergence || t.DirtyRate <= 0 {
		rate = bw
	}
	completion := time.Duration(float64(t.Settings.CompletionTimeoutPerGiB) * float64(t.Bytes) / float64(1<<30) * float64(time.Second))
	if completion <= 0 {
		completion = time.Duration(t.Settings.CompletionTimeoutPerGiB) * time.Second
	}

	if rate <= 0 {
		if t.ProgressTimeout <= completion {
			return Outcome{After: t.ProgressTimeout, Aborted: true, Reason: fmt.Sprintf(
				"migration made no progress for %s (dirty rate %s ≥ bandwidth %s) and was aborted", t.ProgressTimeout, perSecond(t.DirtyRate), perSecond(bw))}
		}
		return completionAbort(completion)
	}
	took := time.Duration(math.Ceil(float64(t.Bytes) / float64(rate) * float64(time.Second)))
	if took > completion {
		return completionAbort(completion)
	}
	if t.FailAttempt {
		return Outcome{After: took / 2, Reason: "simulated migration failure (sim.vmdrain.io/fail-attempts)"}
	}
	return Outcome{Succeeds: true, After: took}
}

func completionAbort(after time.Duration) Outcome {
	return Outcome{After: after, Aborted: true, Reason: fmt.Sprintf("migration did not complete within the completion timeout of %s and was aborted", after)}
}

func perSecond(b int64) string {
	return fmt.Sprintf("%.0fMi/s", float64(b)/(1<<20))
}
