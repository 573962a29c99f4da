package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
)

// checkAndRepair runs an integrity check and applies the store's repair
// policy (gitstore.Store.RepairDerived): derived state is rebuilt (a
// recovery attempt in the metrics), orphans are marked. It returns the
// problems left, broken chains aside (reported, never relinked).
func (n *Node) checkAndRepair(ctx context.Context, deep bool) ([]gitstore.Problem, error) {
	rep, err := n.store.Fsck(ctx, deep)
	if err != nil {
		return nil, err
	}
	n.mets.RecordFsck(fsckMode(deep), len(rep.Problems), rep.Took)
	start := time.Now()
	fix, err := n.store.RepairDerived(ctx, rep)
	n.incidents.atStart(nexus.ComponentStore, problems(rep.Problems), n.opened, repairs(fix.Repaired), err)
	if len(fix.Repaired) > 0 || err != nil {
		n.mets.RecordRecovery(nexus.ComponentStore, err == nil, time.Since(start))
	}
	if err != nil {
		n.log.Error("repairing derived state failed", "err", err)
	}
	for _, r := range fix.Repaired {
		n.log.Warn("repaired", "damage", r.Damage, "action", r.Action)
	}
	var left []gitstore.Problem
	for _, p := range fix.Left {
		if p.Kind == gitstore.ProblemChain {
			n.log.Warn("orphaned context (reported, not relinked)", "problem", p.String())
			continue
		}
		n.log.Error("integrity problem", "mode", fsckMode(deep), "problem", p.String())
		left = append(left, p)
	}
	return left, nil
}

// startupCheck refuses to serve a store whose fast check finds damage it
// cannot repair.
func (n *Node) startupCheck(ctx context.Context) error {
	left, err := n.checkAndRepair(ctx, false)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		var b strings.Builder
		for _, p := range left {
			b.WriteString("\n  " + p.String())
		}
		return &DamagedError{Dir: n.cfg.Dir, Detail: b.String()}
	}
	return nil
}

// DamagedError is a store whose damage Open could not repair: the node
// does not serve it.
type DamagedError struct {
	Dir    string
	Detail string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the store is damaged; not serving:%s\nrun `nexus recover --data %s` (and restore a backup if it says so)", e.Detail, e.Dir)
}

// scrub is one round of the scrubber: a deep check of the repository and
// of the saved index, then the cascading recovery, which repairs what the
// checks found.
func (n *Node) scrub(ctx context.Context) error {
	rep, err := n.store.Fsck(ctx, true)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("scrub failed", "err", err)
		}
		return err
	}
	n.mets.RecordFsck("deep", len(rep.Problems), rep.Took)
	for _, p := range rep.Problems {
		n.log.Warn("scrub found a problem", "problem", p.String())
	}
	if n.engine != nil {
		if err := n.engine.CheckFiles(true); err != nil {
			n.log.Warn("scrub found the saved index damaged", "err", err)
		}
	}
	steps := n.mgr.Run(recovery.WithTrigger(ctx, "the scrubber's deep check"))
	n.log.Info("scrub done", "took", rep.Took, "problems", len(rep.Problems), "recovery", summarize(steps))
	return nil
}

// summarize lists the steps of a cascade that did something.
func summarize(steps []recovery.Step) string {
	var out []string
	for _, s := range steps {
		if s.Status != recovery.OK && s.Status != recovery.Disabled {
			out = append(out, s.Component+" "+string(s.Status))
		}
	}
	if len(out) == 0 {
		return "nothing to recover"
	}
	return strings.Join(out, ", ")
}
