package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Markdown writes the summary of a report: the scenarios, each injection
// with its times, detection and recovery times p50/p99 by scenario, the
// writes, and the problems.
func (rep *Report) Markdown(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	verdict := "PASSED"
	if !rep.Passed {
		verdict = "FAILED"
	}
	p("# Chaos run: %s\n\n", verdict)
	p("Seed %d, duration %s, from %s to %s", rep.Seed, rep.Duration, rep.Started.Format(time.RFC3339), rep.Ended.Format(time.RFC3339))
	if rep.DryRun {
		p(" (dry run: nothing injected)")
	}
	p(".\n\n| scenario | component | injected | detect p50 | detect p99 | recover p50 | recover p99 | skipped |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range rep.Scenarios {
		var det, rec []time.Duration
		for _, inj := range rep.Injections {
			if inj.Scenario == s.Name && inj.Error == "" && !inj.RecoveredAt.IsZero() {
				rec = append(rec, inj.Recover)
				if !inj.DetectedAt.IsZero() {
					det = append(det, inj.Detect)
				}
			}
		}
		p("| %s | %s | %d | %s | %s | %s | %s | %s |\n", s.Name, s.Component, s.Injected,
			quantile(det, 50), quantile(det, 99), quantile(rec, 50), quantile(rec, 99), s.Skipped)
	}
	var fo, rj []time.Duration
	for _, inj := range rep.Injections {
		if inj.Scenario == KillLeader && inj.Error == "" {
			fo, rj = append(fo, inj.Failover), append(rj, inj.Rejoin)
		}
	}
	if len(fo) > 0 {
		p("\n%s: failover (kill to the first write acknowledged after it) p50 %s, p99 %s; rejoin (restart to following a leader with everything committed applied) p50 %s, p99 %s.\n",
			KillLeader, quantile(fo, 50), quantile(fo, 99), quantile(rj, 50), quantile(rj, 99))
	}
	p("\n## Injections\n\n| at | scenario | what | detected by | detect | recover | steps | read back | fsck |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, inj := range rep.Injections {
		fsck := "clean"
		if !inj.Check.FsckClean {
			fsck = inj.Check.Fsck
		}
		det, rec := round(inj.Detect).String(), round(inj.Recover).String()
		if inj.DetectedAt.IsZero() {
			det = "—"
		}
		if rep.Cluster && inj.Error == "" {
			if inj.Check.HeadsIdentical {
				fsck += ", heads identical"
			} else {
				fsck += ", HEADS DIFFER: " + inj.Check.Heads
			}
		}
		if inj.Error != "" {
			det, rec, fsck = "—", "—", "ERROR: "+inj.Error
		}
		if rep.DryRun {
			det, rec, fsck = "—", "—", "—"
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %d (lost %d) | %s |\n", round(inj.Planned), inj.Scenario, cell(inj.What), cell(inj.Detection),
			det, rec, cell(strings.Join(inj.Steps, "; ")), inj.Check.ReadBack, len(inj.Check.Lost), cell(fsck))
	}
	p("\n## Writes\n\nAcknowledged %d, refused %d (never acknowledged: nothing promised), **lost %d**.\n", rep.Writes.Acknowledged, rep.Writes.Failed, rep.Writes.Lost)
	if len(rep.Problems) > 0 {
		p("\n## Problems\n\n")
		for _, pr := range rep.Problems {
			p("- %s\n", pr)
		}
	}
	return nil
}

func cell(s string) string {
	out := []rune{}
	for _, r := range s {
		switch r {
		case '|':
			out = append(out, '\\', '|')
		case '\n':
			out = append(out, ' ')
		default:
			out = append(out, r)
		}
	}
	return string(out)
}

// quantile is the q-th percentile (nearest rank) of ds, or "—".
func quantile(ds []time.Duration, q int) string {
	if len(ds) == 0 {
		return "—"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*q + 99) / 100
	return round(s[max(i, 1)-1]).String()
}
