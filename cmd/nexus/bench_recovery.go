package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/damage"
	"github.com/nexus-mem/nexus/recovery"
)

// recoveryConfig sizes `nexus bench recovery`.
type recoveryConfig struct {
	dir          string
	contexts     int
	recoverEvery time.Duration
	timeout      time.Duration
	keep         bool
}

// runBenchRecovery measures the recovery time objective: a store is
// generated once (contexts, their search index, a backup bundle), then
// each fault is injected into a fresh copy of it and met by this binary's
// own verbs as child processes, timed from the fault to the event that
// ends it, which is polled for.
func runBenchRecovery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench recovery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := recoveryConfig{}
	fs.IntVar(&c.contexts, "contexts", 20000, "contexts in the generated store")
	fs.DurationVar(&c.recoverEvery, "recover-interval", 10*time.Second, "--recover-interval of the nodes (the serve default)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "longest wait for any one event")
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temp dir)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory: the generated store and each scenario's copy")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if c.contexts <= 0 || c.recoverEvery <= 0 || c.timeout <= 0 {
		return usagef("--contexts, --recover-interval and --timeout must be positive")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "nexus-bench-recovery-"); err != nil {
			return err
		}
	}
	if !c.keep {
		defer os.RemoveAll(c.dir)
	}
	b := &recoveryBench{cfg: c, exe: exe, golden: filepath.Join(c.dir, "store"), out: stdout, log: stderr}
	return b.run(ctx)
}

// recoveryBench runs the scenarios of `nexus bench recovery`.
type recoveryBench struct {
	cfg      recoveryConfig
	exe      string
	golden   string // the generated store every scenario copies
	out, log io.Writer
	packMB   float64 // size of the largest pack of the generated store
	// want holds every context of the generated store (the incident
	// records aside), by id: what each scenario must leave readable.
	want map[nexus.ID]string
	// source, if set, is a data directory copied as the store instead of
	// generating one (`nexus drill --dir DATA`).
	source string
}

// rtoRow is one line of the table: the fault, the path that meets it, the
// time it took and what the node and commands reported about its parts;
// d is the time from the fault to the event that ends it (what `nexus
// drill` holds to an objective).
type rtoRow struct {
	fault, path, took, parts string
	d                        time.Duration
}

type rtoScenario func(ctx context.Context, data string) (rtoRow, error)

func (b *recoveryBench) say(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

func (b *recoveryBench) run(ctx context.Context) error {
	fmt.Fprintf(b.out, "# nexus bench recovery — %s, %d contexts, GOMAXPROCS %d, load average %s\n\n",
		time.Now().UTC().Format(time.RFC3339), b.cfg.contexts, runtime.GOMAXPROCS(0), loadAverage())
	if err := b.prepare(ctx); err != nil {
		return fmt.Errorf("generate the store: %w", err)
	}
	fmt.Fprintf(b.out, "nodes: `nexus serve --recover-interval %s --backup-interval 0 --scrub-interval 0`; events polled every %s; each scenario on a fresh copy of the store\n\n",
		b.cfg.recoverEvery, benchPoll)
	fmt.Fprintf(b.out, "| fault | path | time | measured parts |\n|---|---|---:|---|\n")
	scenarios := []rtoScenario{b.indexDeleted, b.indexDestroyed, b.flipRunning, b.flipStopped, b.recoverThenServe, b.truncatedPack}
	for i, s := range scenarios {
		b.say("scenario %d of %d", i+1, len(scenarios))
		data := filepath.Join(b.cfg.dir, fmt.Sprintf("scenario-%d", i+1))
		row, err := b.onCopy(ctx, data, s)
		if err != nil {
			return fmt.Errorf("scenario %d: %w", i+1, err)
		}
		fmt.Fprintf(b.out, "| %s | %s | %s | %s |\n", row.fault, row.path, row.took, row.parts)
	}
	fmt.Fprintf(b.out, "\nload average at the end: %s\n", loadAverage())
	return nil
}

// onCopy runs scenario s on data, a fresh copy of the generated store,
// and removes the copy afterwards unless --keep; the row's parts name
// the copy DATA.
func (b *recoveryBench) onCopy(ctx context.Context, data string, s rtoScenario) (rtoRow, error) {
	if err := copyTree(b.golden, data); err != nil {
		return rtoRow{}, fmt.Errorf("copy the store: %w", err)
	}
	row, err := s(ctx, data)
	row.parts = shorten(row.parts, data)
	if !b.cfg.keep {
		if rerr := os.RemoveAll(data); err == nil {
			err = rerr
		}
	}
	return row, err
}

// prepare generates the store every scenario copies (or copies the
// source): contexts written through Apply, the search index built by
// `nexus reindex` (its vectors kept in git) and a bundle written by
// `nexus backup` into DATA/backups, which the repository repairs read
// from; then reads every context of it, to check each scenario against.
func (b *recoveryBench) prepare(ctx context.Context) error {
	gen := newTextGen(1, 1000)
	t0 := time.Now()
	made := "filled in %s (Apply, batches of 1024)"
	var err error
	if b.source != "" {
		made = "copied from " + b.source + " in %s"
		err = copyTree(b.source, b.golden)
	} else {
		err = fillWith(ctx, b.golden, b.cfg.contexts, newProgress(b.log, "store"), func(i int) (string, string) {
			return gen.text(i%len(gen.topics), 40), fmt.Sprintf(`{"topic":%d}`, i%len(gen.topics))
		})
	}
	if err != nil {
		return err
	}
	fill := time.Since(t0)
	var took [2]time.Duration
	for i, verb := range []string{"reindex", "backup"} {
		t0 = time.Now()
		out, code, err := b.runExe(ctx, verb, "--data", b.golden)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("nexus %s exited %d: %s", verb, code, out)
		}
		took[i] = time.Since(t0)
	}
	if b.want, err = storedContents(ctx, b.golden); err != nil {
		return fmt.Errorf("read the store: %w", err)
	}
	b.cfg.contexts = len(b.want)
	facts, err := b.storeFacts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "store: %s\n\nprepared: "+made+", indexed in %s (`nexus reindex`), backed up in %s (`nexus backup`)\n\n",
		facts, secs(fill), secs(took[0]), secs(took[1]))
	return nil
}

// storeFacts describes the generated store: packs, objects, bundle.
func (b *recoveryBench) storeFacts(ctx context.Context) (string, error) {
	packs, err := filepath.Glob(filepath.Join(b.golden, "repo.git", "objects", "pack", "*.pack"))
	if err != nil {
		return "", err
	}
	var total int64
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		total += st.Size()
	}
	_, big, err := damage.LargestPack(b.golden)
	if err != nil {
		return "", err
	}
	b.packMB = float64(big) / 1e6
	out, err := exec.CommandContext(ctx, "git", "--git-dir", filepath.Join(b.golden, "repo.git"), "count-objects", "-v").Output()
	if err != nil {
		return "", fmt.Errorf("git count-objects: %w", err)
	}
	objects := ""
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "in-pack: "); ok {
			objects = v
		}
	}
	bundle, err := b.bundle()
	if err != nil {
		return "", err
	}
	st, err := os.Stat(bundle)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d contexts; %d packs, %.1f MB (largest %.1f MB), %s objects in packs; saved search index; newest bundle %.1f MB in DATA/backups",
		b.cfg.contexts, len(packs), float64(total)/1e6, b.packMB, objects, float64(st.Size())/1e6), nil
}

// indexDeleted: the saved index files are deleted under a running node;
// timed until /health says the index component was recovered.
func (b *recoveryBench) indexDeleted(ctx context.Context, data string) (rtoRow, error) {
	n, err := b.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(b.cfg.timeout)
	if err := b.until(ctx, n, "index loaded", b.indexComplete(n)); err != nil {
		return rtoRow{}, err
	}
	files, err := filepath.Glob(filepath.Join(indexDir(data), "*", "*.bin"))
	if err != nil || len(files) == 0 {
		return rtoRow{}, fmt.Errorf("no saved index files in %s (%v)", indexDir(data), err)
	}
	t0 := time.Now()
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return rtoRow{}, err
		}
	}
	var last recovery.Step
	err = b.until(ctx, n, "index recovered", func() (bool, error) {
		h, err := n.health()
		var k int
		k, last = recovered(h, nexus.ComponentIndex)
		return k > 0, err
	})
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	if again, _ := filepath.Glob(filepath.Join(indexDir(data), "*", "*.bin")); len(again) < len(files) {
		return rtoRow{}, fmt.Errorf("recovered, but %d of %d index files are back", len(again), len(files))
	}
	return rtoRow{
		fault: "saved index files deleted under a running node",
		path:  fmt.Sprintf("cascade, `--recover-interval` %s", b.cfg.recoverEvery),
		took:  secs(total),
		d:     total,
		parts: fmt.Sprintf("%d files deleted; the cascade's check at +%s wrote them again from memory in %s", len(files), secs(last.At.Sub(t0)), secs(last.Took)),
	}, b.settled(ctx, n)
}

// indexDestroyed: the index directory is removed, the node started;
// timed to /readyz 200, then to an index holding every context.
func (b *recoveryBench) indexDestroyed(ctx context.Context, data string) (rtoRow, error) {
	if err := os.RemoveAll(indexDir(data)); err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	n, err := b.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(b.cfg.timeout)
	if err := b.until(ctx, n, "ready", n.ready); err != nil {
		return rtoRow{}, err
	}
	ready := time.Since(t0)
	if err := b.until(ctx, n, "index complete", b.indexComplete(n)); err != nil {
		return rtoRow{}, err
	}
	full := time.Since(t0)
	log := n.log.String()
	vectors := logged(log, "rebuilding the search index", strconv.Quote("vectors kept in git"))
	if len(vectors) == 0 {
		return rtoRow{}, fmt.Errorf("the node did not log its index rebuild:\n%s", n.log.tail())
	}
	return rtoRow{
		fault: "index directory destroyed, node restarted",
		path:  "`nexus serve`",
		took:  fmt.Sprintf("%s ready; %s to a complete index", secs(ready), secs(full)),
		d:     full,
		parts: fmt.Sprintf("index rebuilt in the background (index lag 0, %d contexts indexed); vectors read from git: %s%s", b.cfg.contexts, vectors[0], localNote(log)),
	}, b.settled(ctx, n)
}

// localNote says why a rebuild read no vectors from git, when the node
// logged that its model is local.
func localNote(log string) string {
	if l := logged(log, "rebuilding the search index", strconv.Quote("local model")); len(l) > 0 && l[0] == "true" {
		return " (the model is local: its vectors are not kept, the texts are embedded again)"
	}
	return ""
}

// flipRunning: one bit flipped in the largest pack under a running node,
// then a deep check asked for (as the scrub runs it); timed until /health
// says the repository was recovered.
func (b *recoveryBench) flipRunning(ctx context.Context, data string) (rtoRow, error) {
	n, err := b.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(b.cfg.timeout)
	if err := b.until(ctx, n, "ready", n.ready); err != nil {
		return rtoRow{}, err
	}
	pack, size, err := damage.LargestPack(data)
	if err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	if err := damage.FlipBit(pack, size/2, 0x01); err != nil {
		return rtoRow{}, err
	}
	rep, err := n.deepCheck(ctx)
	if err != nil {
		return rtoRow{}, err
	}
	if len(rep.Problems) == 0 {
		return rtoRow{}, fmt.Errorf("the deep check found nothing after a bit of %s was flipped", pack)
	}
	var last recovery.Step
	err = b.until(ctx, n, "repository recovered", func() (bool, error) {
		h, err := n.health()
		var k int
		k, last = recovered(h, nexus.ComponentGit)
		return k > 0, err
	})
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	if err := b.settled(ctx, n); err != nil {
		return rtoRow{}, err
	}
	n.stop(b.cfg.timeout)
	return rtoRow{
		fault: fmt.Sprintf("one bit flipped in the largest pack (%.1f MB) under a running node", b.packMB),
		path:  "deep check (`POST /v1/admin/fsck?deep=true`), then the cascade",
		took:  secs(total),
		d:     total,
		parts: fmt.Sprintf("deep check %s (%d objects, %d problems); the cascade's repair from +%s, %s: %s",
			secs(rep.Took), rep.Objects, len(rep.Problems), secs(last.At.Sub(t0)), secs(last.Took), last.Reason),
	}, b.gitFsck(ctx, data)
}

// flipStopped: the same fault on a stopped node, met by `nexus fsck`.
func (b *recoveryBench) flipStopped(ctx context.Context, data string) (rtoRow, error) {
	if err := b.flipLargest(data); err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	out, code, err := b.runExe(ctx, "fsck", "--data", data, "--json")
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	var res fsckResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != fsckRepaired || res.Store == nil {
		return rtoRow{}, fmt.Errorf("nexus fsck exited %d (want %d, repaired): %v\n%s", code, fsckRepaired, err, out)
	}
	if err := b.checkServes(ctx, data); err != nil {
		return rtoRow{}, err
	}
	return rtoRow{
		fault: "the same, node stopped",
		path:  "`nexus fsck`",
		took:  secs(total),
		d:     total,
		parts: fmt.Sprintf("exit 1 (repaired): %s; confirming deep check %s", strings.Join(res.Repaired, "; "), secs(res.Store.Took)),
	}, b.gitFsck(ctx, data)
}

// recoverThenServe: the same fault on a stopped node, met by `nexus
// recover`, then `nexus serve` timed to /readyz 200.
func (b *recoveryBench) recoverThenServe(ctx context.Context, data string) (rtoRow, error) {
	if err := b.flipLargest(data); err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	out, code, err := b.runExe(ctx, "recover", "--data", data, "--json")
	rec := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	var res struct{ Steps []recovery.Step }
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res.Steps) == 0 || res.Steps[0].Status != recovery.Recovered {
		return rtoRow{}, fmt.Errorf("nexus recover exited %d, want 0 with the repository recovered: %v\n%s", code, err, out)
	}
	t1 := time.Now()
	n, err := b.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(b.cfg.timeout)
	if err := b.until(ctx, n, "ready", n.ready); err != nil {
		return rtoRow{}, err
	}
	serve := time.Since(t1)
	var steps []string
	for _, s := range res.Steps {
		if s.Status != recovery.Disabled {
			steps = append(steps, fmt.Sprintf("%s %s %s", s.Component, s.Status, secs(s.Took)))
		}
	}
	if err := b.settled(ctx, n); err != nil {
		return rtoRow{}, err
	}
	n.stop(b.cfg.timeout)
	return rtoRow{
		fault: "the same, node stopped",
		path:  "`nexus recover`, then `nexus serve`",
		took:  secs(rec) + " + " + secs(serve),
		d:     rec + serve,
		parts: "the cascade: " + strings.Join(steps, ", ") + "; repository: " + res.Steps[0].Reason,
	}, b.gitFsck(ctx, data)
}

// truncatedPack: the largest pack cut to half its size, the node started;
// timed to /readyz 200.
func (b *recoveryBench) truncatedPack(ctx context.Context, data string) (rtoRow, error) {
	pack, size, err := damage.LargestPack(data)
	if err != nil {
		return rtoRow{}, err
	}
	if err := os.Truncate(pack, size/2); err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	n, err := b.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(b.cfg.timeout)
	if err := b.until(ctx, n, "ready", n.ready); err != nil {
		return rtoRow{}, err
	}
	total := time.Since(t0)
	var did []string
	for _, what := range logged(n.log.String(), "repaired at start", "what") {
		if !strings.HasPrefix(what, "could not open") { // the reason, said again by the repair
			did = append(did, what)
		}
	}
	if len(did) == 0 {
		return rtoRow{}, fmt.Errorf("ready, but the node did not report a repair at start:\n%s", n.log.tail())
	}
	if err := b.settled(ctx, n); err != nil {
		return rtoRow{}, err
	}
	n.stop(b.cfg.timeout)
	return rtoRow{
		fault: "largest pack truncated to half, node restarted",
		path:  "`nexus serve` (offline repair at start)",
		took:  secs(total),
		d:     total,
		parts: "repaired at start: " + strings.Join(did, "; "),
	}, b.gitFsck(ctx, data)
}

func (b *recoveryBench) flipLargest(data string) error {
	pack, size, err := damage.LargestPack(data)
	if err != nil {
		return err
	}
	return damage.FlipBit(pack, size/2, 0x01)
}

// indexComplete says whether the node's index holds every context (and
// the incident records the node wrote of the scenario's fault).
func (b *recoveryBench) indexComplete(n *benchNode) func() (bool, error) {
	return func() (bool, error) {
		h, err := n.health()
		if err != nil {
			return false, err
		}
		records, err := n.incidentRecords()
		lag, indexed := detail(h, nexus.ComponentIndex, "lag"), detail(h, nexus.ComponentIndex, "indexed")
		return err == nil && lag == 0 && int(indexed)-records == b.cfg.contexts, err
	}
}

// settled waits until every component of the node is healthy and it
// holds every context, indexed, then reads them all: the scenario left
// nothing behind.
func (b *recoveryBench) settled(ctx context.Context, n *benchNode) error {
	err := b.until(ctx, n, "healthy with every context", func() (bool, error) {
		h, err := n.health()
		if err != nil {
			return false, err
		}
		if bad := unhealthy(h); bad != "" {
			return false, fmt.Errorf("%s", bad)
		}
		records, err := n.incidentRecords()
		if err != nil {
			return false, err
		}
		if got := int(detail(h, nexus.ComponentStore, "contexts")) - records; got != b.cfg.contexts {
			return false, fmt.Errorf("%d contexts besides %d incident records, want %d", got, records, b.cfg.contexts)
		}
		return b.indexComplete(n)()
	})
	if err != nil {
		return err
	}
	return b.readsAll(ctx, n)
}

// readsAll checks that the node serves every context of the generated
// store exactly as it was written, and no other (the incident records
// aside).
func (b *recoveryBench) readsAll(ctx context.Context, n *benchNode) error {
	got, err := contentsOf(ctx, httpapi.NewClient(n.url, httpapi.WithHTTPClient(n.http)))
	if err != nil {
		return fmt.Errorf("read every context: %w", err)
	}
	return sameContents(got, b.want)
}

// bundle is the newest bundle of the generated store.
func (b *recoveryBench) bundle() (string, error) {
	bundles, err := filepath.Glob(filepath.Join(backupDir(b.golden), "*.bundle"))
	if err != nil || len(bundles) == 0 {
		return "", fmt.Errorf("no bundle in %s (%v)", backupDir(b.golden), err)
	}
	slices.Sort(bundles) // named by their time
	return bundles[len(bundles)-1], nil
}

// storedContents reads every context of the store in data (the node
// stopped).
func storedContents(ctx context.Context, data string) (map[nexus.ID]string, error) {
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return contentsOf(ctx, s)
}

// contentsOf reads every context of s but the incident records, each
// summed up by a digest of everything written of it.
func contentsOf(ctx context.Context, s nexus.Store) (map[nexus.ID]string, error) {
	out := map[nexus.ID]string{}
	f := nexus.Filter{Limit: nexus.MaxLimit, Order: nexus.Oldest}
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, c := range page.Contexts {
			if c.Namespace == recovery.IncidentsNamespace {
				continue
			}
			var meta bytes.Buffer
			if len(c.Metadata) > 0 {
				if err := json.Compact(&meta, c.Metadata); err != nil {
					return nil, fmt.Errorf("context %s: metadata: %w", c.ID, err)
				}
			}
			h := sha256.New()
			for _, v := range []string{c.Namespace, string(c.Type), c.AgentID, c.ParentID.String(), c.Timestamp.UTC().Format(time.RFC3339Nano), c.SemanticHash, meta.String(), c.Content} {
				fmt.Fprintf(h, "%d:%s", len(v), v)
			}
			out[c.ID] = hex.EncodeToString(h.Sum(nil))
		}
		if page.NextCursor == "" {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
}

// sameContents names what differs between the contexts read and those
// wanted: missing, changed or unexpected contexts.
func sameContents(got, want map[nexus.ID]string) error {
	var missing, changed, extra int
	var first string
	for id, w := range want {
		switch g, ok := got[id]; {
		case !ok:
			missing++
			first = cmp.Or(first, "missing: "+id.String())
		case g != w:
			changed++
			first = cmp.Or(first, "changed: "+id.String())
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
			first = cmp.Or(first, "unexpected: "+id.String())
		}
	}
	if missing+changed+extra > 0 {
		return fmt.Errorf("of %d contexts, %d missing, %d changed, %d unexpected (first %s)", len(want), missing, changed, extra, first)
	}
	return nil
}

// checkServes starts a node on data and checks it settles.
func (b *recoveryBench) checkServes(ctx context.Context, data string) error {
	n, err := b.launch(ctx, data)
	if err != nil {
		return err
	}
	defer n.stop(b.cfg.timeout)
	return b.settled(ctx, n)
}

// gitFsck checks the repaired repository with the git CLI.
func (b *recoveryBench) gitFsck(ctx context.Context, data string) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput()
	if err != nil {
		return fmt.Errorf("git fsck after the repair: %w\n%s", err, out)
	}
	return nil
}

// Names in the nodes' messages that differ from run to run.
var (
	bundleName = regexp.MustCompile(`DATA/backups/nexus-[0-9TZ.]+-[0-9a-f]+\.bundle`)
	packName   = regexp.MustCompile(`pack-([0-9a-f]{7})[0-9a-f]{33}`)
	quarantine = regexp.MustCompile(`DATA/quarantine/[0-9TZ]+`)
)

// shorten makes a scenario's report readable: the data directory becomes
// DATA, the bundle and quarantine names generic, pack names short.
func shorten(s, data string) string {
	s = strings.ReplaceAll(s, data, "DATA")
	s = bundleName.ReplaceAllString(s, "the bundle in DATA/backups")
	s = quarantine.ReplaceAllString(s, "DATA/quarantine")
	return packName.ReplaceAllString(s, "pack-$1…")
}

// loadAverage is the machine's load average (1, 5, 15 minutes), for
// judging how shared the machine was ("unknown" where the system does not
// tell it).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
