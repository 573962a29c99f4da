package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/config"
)

// Exit codes of `nexus drill` besides 0 (every objective met, every
// check passed) and 2 (a mistake in the command line or the
// configuration file).
const (
	// drillFailed: a scenario could not be set up, its fault was not met
	// (the node did not recover within --timeout), or a data check failed
	// (a context missing or changed, git fsck not clean, heads differing).
	drillFailed = 1
	// drillMissed: every scenario ran and every check passed, but a
	// scenario took longer than its objective.
	drillMissed = 3
)

// drillConfig is the command line of `nexus drill`.
type drillConfig struct {
	args       []string // as given, for the report
	configFile string
	scenarios  []string
	runs       int
	jsonFile   string
	mdFile     string
	recovery   recoveryConfig
}

// drillScenario is one scenario of `nexus drill`: what it does, whether
// it needs the generated store (store) and runs on a copy of it (copy).
type drillScenario struct {
	what        string
	store, copy bool
	run         rtoScenario
}

// drill runs the scenarios of `nexus drill` with the machinery of `nexus
// bench recovery`: the same generated store, child processes and checks.
type drill struct {
	*recoveryBench
	cfg        drillConfig
	objectives config.Objectives
	scenarios  map[string]drillScenario
}

// drillResult is one scenario's line of the report.
type drillResult struct {
	Scenario         string    `json:"scenario"`
	What             string    `json:"what"`
	Objective        string    `json:"objective"`
	ObjectiveSeconds float64   `json:"objective_seconds"`
	Seconds          []float64 `json:"seconds"` // each run's measured time
	P50              float64   `json:"p50_seconds"`
	Max              float64   `json:"max_seconds"`
	Met              bool      `json:"met"`
	Error            string    `json:"error,omitempty"` // why the scenario failed
	Parts            []string  `json:"parts"`           // what each run measured and reported
}

// runDrill validates the recovery time objectives of the configuration
// file: each selected scenario is run --runs times, each time on a fresh
// copy of a generated store (or of the store in --dir) or on a scratch
// node or cluster, timed from the fault to the event that ends it, and
// the store checked afterwards.
func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := drillConfig{args: args}
	fs.StringVar(&c.configFile, "config", env("NEXUS_CONFIG", ""), "configuration file whose objectives: section the drill checks (default: the built-in objectives; env NEXUS_CONFIG)")
	scenarios := fs.String("scenarios", strings.Join(config.ObjectiveNames, ","), "scenarios to run, comma-separated")
	fs.IntVar(&c.runs, "runs", 1, "runs of each scenario (p50 and max reported; the max must meet the objective)")
	fs.StringVar(&c.jsonFile, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.mdFile, "markdown", "", "also write the report as markdown (the table of docs/BENCHMARKS.md) to this file")
	fs.IntVar(&c.recovery.contexts, "contexts", 20000, "contexts in the generated store")
	fs.DurationVar(&c.recovery.recoverEvery, "recover-interval", 10*time.Second, "--recover-interval of the nodes (the serve default)")
	fs.DurationVar(&c.recovery.timeout, "timeout", 10*time.Minute, "longest wait for any one event: a scenario not recovered by then fails")
	fs.StringVar(&c.recovery.dir, "dir", "", "work directory (default: a new temp dir); a data directory (holding repo.git) is copied, never drilled on")
	fs.BoolVar(&c.recovery.keep, "keep", false, "keep the work directory: the store and each scenario's copy")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if c.recovery.contexts <= 0 || c.recovery.recoverEvery <= 0 || c.recovery.timeout <= 0 || c.runs <= 0 {
		return usagef("--contexts, --recover-interval, --timeout and --runs must be positive")
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if !slices.Contains(config.ObjectiveNames, s) {
			return usagef("unknown scenario %q: want some of %s", s, strings.Join(config.ObjectiveNames, ", "))
		}
		if !slices.Contains(c.scenarios, s) {
			c.scenarios = append(c.scenarios, s)
		}
	}
	objectives := config.DefaultObjectives()
	if c.configFile != "" {
		f, err := config.Load(c.configFile)
		if err != nil {
			return usageError{err}
		}
		objectives = f.Objectives
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	source := ""
	if c.recovery.dir != "" {
		if _, err := os.Stat(filepath.Join(c.recovery.dir, "repo.git")); err == nil {
			// A data directory: it is copied into a work directory of
			// the drill's own.
			if source, err = filepath.Abs(c.recovery.dir); err != nil {
				return err
			}
			c.recovery.dir = ""
		}
	}
	if c.recovery.dir == "" {
		if c.recovery.dir, err = os.MkdirTemp("", "nexus-drill-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(c.recovery.dir, 0o700); err != nil {
		return err
	}
	if !c.recovery.keep {
		defer os.RemoveAll(c.recovery.dir)
	}
	var report bytes.Buffer
	b := &recoveryBench{cfg: c.recovery, exe: exe, golden: filepath.Join(c.recovery.dir, "store"),
		out: io.MultiWriter(stdout, &report), log: stderr, source: source}
	d := &drill{recoveryBench: b, cfg: c, objectives: objectives}
	d.scenarios = d.all()
	results, err := d.run(ctx)
	if err != nil {
		return err
	}
	if c.mdFile != "" {
		if err := os.WriteFile(c.mdFile, report.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if c.jsonFile != "" {
		out, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonFile, append(out, '\n'), 0o644); err != nil {
			return err
		}
	}
	return drillVerdict(results)
}

// all are the scenarios of the drill by name (config.ObjectiveNames).
func (d *drill) all() map[string]drillScenario {
	return map[string]drillScenario{
		config.ObjectiveIndexRebuild: {"index directory destroyed, node restarted → an index holding every context",
			true, true, d.indexDestroyed},
		config.ObjectiveIndexFilesDeleted: {"saved index files deleted under a running node → the cascade wrote them again",
			true, true, d.indexDeleted},
		config.ObjectiveObjectRepair: {"one bit flipped in the largest pack under a running node, deep check → repaired from the bundle",
			true, true, d.flipRunning},
		config.ObjectivePackTruncated: {"largest pack truncated to half, node restarted → ready",
			true, true, d.truncatedPack},
		config.ObjectiveProcessRestart: {"a supervised process SIGKILLed → running again",
			false, false, d.processRestart},
		config.ObjectiveAgentFailover: {"a pool's agent's provider down → the answer from the pool's backup",
			false, false, d.agentFailover},
		config.ObjectiveLeaderFailover: {"the leader of a 3-node cluster killed → first write acknowledged",
			false, false, d.leaderFailover},
		config.ObjectiveRestoreFromBackup: {"the newest bundle restored into a new directory → `nexus serve` ready",
			true, false, d.restoreFromBackup},
		config.ObjectiveDiskFullResume: {"disk full, writes refused (insufficient_storage), space freed → first write acknowledged",
			false, false, d.diskFullResume},
	}
}

// run runs the selected scenarios and prints the report; a scenario that
// fails is reported and the others still run.
func (d *drill) run(ctx context.Context) ([]drillResult, error) {
	start := loadAverage()
	fmt.Fprintf(d.out, "nexus drill — %s, GOMAXPROCS %d, load average %s at the start\n\ncommand: `%s`\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), start, strings.TrimSpace("nexus drill "+strings.Join(d.cfg.args, " ")))
	for _, name := range d.cfg.scenarios {
		if d.scenarios[name].store {
			if err := d.prepare(ctx); err != nil {
				return nil, fmt.Errorf("generate the store: %w", err)
			}
			break
		}
	}
	var results []drillResult
	for i, name := range d.cfg.scenarios {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		results = append(results, d.scenario(ctx, name, fmt.Sprintf("[%d/%d]", i+1, len(d.cfg.scenarios))))
	}
	fmt.Fprintf(d.out, "nodes: `nexus serve --recover-interval %s --backup-interval 0 --scrub-interval 0` as child processes, the cluster in process; events polled every %s; %d run(s) of each scenario, each on a fresh copy or a scratch node; met: the slowest run within the objective\n\n",
		d.cfg.recovery.recoverEvery, benchPoll, d.cfg.runs)
	fmt.Fprintf(d.out, "| scenario | fault → event | objective | p50 | max | result |\n|---|---|---:|---:|---:|---|\n")
	for _, r := range results {
		p50, top, verdict := "—", "—", "met"
		if len(r.Seconds) > 0 {
			p50, top = seconds(r.P50), seconds(r.Max)
		}
		switch {
		case r.Error != "":
			verdict = "**failed**: " + strings.ReplaceAll(firstLine(r.Error), "|", `\|`)
		case !r.Met:
			verdict = "**missed**"
		}
		fmt.Fprintf(d.out, "| `%s` | %s | %s | %s | %s | %s |\n", r.Scenario, r.What, r.Objective, p50, top, verdict)
	}
	fmt.Fprintf(d.out, "\nWhat each run measured:\n\n")
	for _, r := range results {
		for i, p := range r.Parts {
			fmt.Fprintf(d.out, "- `%s` run %d (%s): %s\n", r.Scenario, i+1, seconds(r.Seconds[i]), p)
		}
		if r.Error != "" {
			fmt.Fprintf(d.out, "- `%s` failed: %s\n", r.Scenario, firstLine(r.Error))
		}
	}
	fmt.Fprintf(d.out, "\nload average: %s at the start, %s at the end\n", start, loadAverage())
	return results, nil
}

// scenario runs one scenario --runs times, printing a progress line
// before and after each run.
func (d *drill) scenario(ctx context.Context, name, step string) drillResult {
	sc, obj := d.scenarios[name], d.objectives[name]
	r := drillResult{Scenario: name, What: sc.what, Objective: obj.String(), ObjectiveSeconds: obj.Seconds(), Seconds: []float64{}, Parts: []string{}}
	var took []time.Duration
	for run := range d.cfg.runs {
		d.say("drill %s %s, run %d of %d: %s …", step, name, run+1, d.cfg.runs, sc.what)
		dir := filepath.Join(d.cfg.recovery.dir, fmt.Sprintf("%s-%d", name, run+1))
		var row rtoRow
		var err error
		if sc.copy {
			row, err = d.onCopy(ctx, dir, sc.run)
		} else {
			row, err = d.scratch(ctx, dir, sc.run)
		}
		if err != nil {
			r.Error = err.Error()
			d.say("drill %s %s, run %d of %d: FAILED: %v", step, name, run+1, d.cfg.runs, err)
			break
		}
		took = append(took, row.d)
		r.Seconds = append(r.Seconds, row.d.Seconds())
		r.Parts = append(r.Parts, row.parts)
		d.say("drill %s %s, run %d of %d: %s (objective %s): %s", step, name, run+1, d.cfg.runs, secs(row.d), obj, met(row.d <= obj))
	}
	if len(took) > 0 {
		r.P50, r.Max = pctOf(took, 0.5).Seconds(), pctOf(took, 1).Seconds()
	}
	r.Met = r.Error == "" && pctOf(took, 1) <= obj
	return r
}

// scratch runs a scenario that makes its own node, cluster or store in
// dir, removed afterwards unless --keep.
func (d *drill) scratch(ctx context.Context, dir string, s rtoScenario) (rtoRow, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rtoRow{}, err
	}
	row, err := s(ctx, dir)
	row.parts = shorten(row.parts, dir)
	if !d.cfg.recovery.keep {
		if rerr := os.RemoveAll(dir); err == nil {
			err = rerr
		}
	}
	return row, err
}

// drillVerdict is the error (and exit code) of the results: a failed
// scenario wins over a missed objective.
func drillVerdict(results []drillResult) error {
	var failed, missed []string
	for _, r := range results {
		switch {
		case r.Error != "":
			failed = append(failed, r.Scenario+": "+firstLine(r.Error))
		case !r.Met:
			missed = append(missed, fmt.Sprintf("%s (max %s, objective %s)", r.Scenario, seconds(r.Max), r.Objective))
		}
	}
	switch {
	case len(failed) > 0:
		return exitCode{drillFailed, fmt.Sprintf("%d scenario(s) failed: %s", len(failed), strings.Join(failed, "; "))}
	case len(missed) > 0:
		return exitCode{drillMissed, fmt.Sprintf("objective missed: %s", strings.Join(missed, "; "))}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// seconds prints a measured time: to the hundredth of a second, or to
// the tenth of a millisecond below that (a resume can take a few
// milliseconds, which "0.00 s" would hide).
func seconds(f float64) string {
	if f >= 0.01 || f <= 0 {
		return fmt.Sprintf("%.2f s", f)
	}
	return fmt.Sprintf("%.4f s", f)
}
