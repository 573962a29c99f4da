package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/damage"
	"github.com/nexus-mem/nexus/supervisor"
)

// Fault injection for `nexus chaos` (docs/CHAOS.md): each scenario does
// to the running node what the fault would, for real, and says which
// /health component should notice. Refused unless the configuration
// file sets chaos.enabled; every injection is an audited admin action.

var _ httpapi.ChaosInjector = (*Node)(nil)

// The chaos scenarios a node injects itself.
const (
	ChaosCorruptObject  = "corrupt_object"
	ChaosIndexDamage    = "index_damage"
	ChaosMemoryPressure = "memory_pressure"
	ChaosKillProcess    = "kill_process"
	ChaosDiskFill       = "disk_fill"
)

// chaosHoldMax bounds how long a held fault (ballast, memory) is held.
const chaosHoldMax = 5 * time.Minute

// chaosState is the held fault of a node, if any: one at a time.
type chaosState struct {
	mu    sync.Mutex
	until time.Time
	what  string
	// fill writes the ballast of a disk_fill, after the audit record.
	fill func() error
}

func (n *Node) chaosState() *chaosState { return &n.chaos }

func (n *Node) chaosConfig() (config.Chaos, bool) {
	if n.cfg.File == nil {
		return config.Chaos{}, false
	}
	return n.cfg.File.Chaos, n.cfg.File.Chaos.Enabled
}

// errChaosOff refuses an injection on a node that did not opt in.
func (n *Node) errChaosOff() error {
	where := "its configuration file (--config)"
	if n.cfg.File != nil && n.cfg.File.File != "" {
		where = n.cfg.File.File
	}
	return nexus.Errorf(nexus.EConflict, "fault injection is not enabled on this node: set chaos.enabled: true in %s and restart it (docs/CHAOS.md)", where)
}

// ChaosScenarios lists the scenarios and whether this node can have each
// injected.
func (n *Node) ChaosScenarios(context.Context) (*httpapi.ChaosStatus, error) {
	if _, ok := n.chaosConfig(); !ok {
		return nil, n.errChaosOff()
	}
	st := &httpapi.ChaosStatus{Enabled: true, Cluster: n.cluster != nil}
	for _, name := range chaosScenarios {
		sc := httpapi.ChaosScenario{Name: name, Component: chaosComponent(name), Description: chaosDescriptions[name], Available: true}
		if why := n.chaosUnavailable(name); why != "" {
			sc.Available, sc.Reason = false, why
		}
		st.Scenarios = append(st.Scenarios, sc)
	}
	return st, nil
}

// chaosScenarios are the scenarios, in the order they are listed.
var chaosScenarios = []string{ChaosCorruptObject, ChaosIndexDamage, ChaosMemoryPressure, ChaosKillProcess, ChaosDiskFill,
	ChaosProviderFail, ChaosProviderLatency, ChaosLeaderIsolate, ChaosRaftLatency}

var chaosDescriptions = map[string]string{
	ChaosProviderFail:    "resets every connection of one agent to its LLM provider at its first byte, in the node's chaos proxy (params agent, hold); its heartbeats fail, its breaker opens, then closes once the provider answers again",
	ChaosProviderLatency: "delays every byte between one agent and its LLM provider, both ways, in the node's chaos proxy (params agent, delay: default the agent's timeout; hold)",
	ChaosCorruptObject:   "writes a verified backup, then flips one bit in the middle of the largest pack; the deep check finds it and the cascade repairs it from the backup",
	ChaosIndexDamage:     "deletes the saved search index files, or empties one (params mode=delete|damage); the semantic index writes them again",
	ChaosMemoryPressure:  "allocates and touches memory up to 95 % of the node's budget, holds it (params hold), then releases it; the governor shrinks the L1 cache meanwhile",
	ChaosKillProcess:     "sends SIGKILL to a running supervised process (params process=NAME); the supervisor restarts it",
	ChaosLeaderIsolate:   "on the leader of a cluster: closes every raft connection and accepts or dials none for a while (params hold); the others elect a new leader, it steps down, then catches up",
	ChaosRaftLatency:     "on a node of a cluster: delays every raft message it sends (params delay, default 100ms; hold)",
	ChaosDiskFill:        "fills the data directory's filesystem with a ballast file down to a floor (params floor=BYTES, never below chaos.disk_floor), holds it (params hold), then removes it",
}

func chaosComponent(name string) string {
	switch name {
	case ChaosCorruptObject, ChaosDiskFill:
		return nexus.ComponentGit
	case ChaosIndexDamage:
		return nexus.ComponentIndex
	case ChaosMemoryPressure:
		return nexus.ComponentCache
	case ChaosKillProcess, ChaosProviderFail, ChaosProviderLatency:
		return nexus.ComponentAgents
	case ChaosLeaderIsolate, ChaosRaftLatency:
		return nexus.ComponentCluster
	}
	return ""
}

// chaosUnavailable says why name cannot be injected here, or "".
func (n *Node) chaosUnavailable(name string) string {
	switch name {
	case ChaosCorruptObject:
	case ChaosIndexDamage:
		if n.engine == nil {
			return "the node serves without the search index (--no-search)"
		}
	case ChaosMemoryPressure:
		if memoryBudget(n.cfg.MemoryBudget) <= 0 {
			return "the node has no memory budget (--memory-budget, or a cgroup memory limit): no governor to put under pressure"
		}
	case ChaosKillProcess:
		if len(n.chaosProcesses()) == 0 {
			return "the node supervises no running process (supervisor.processes in its configuration file)"
		}
	case ChaosDiskFill:
	case ChaosProviderFail, ChaosProviderLatency:
		return n.providerUnavailable()
	case ChaosLeaderIsolate, ChaosRaftLatency:
		if n.raftGate == nil {
			return "not a node of a cluster"
		}
	default:
		return "unknown scenario"
	}
	return ""
}

// chaosProcesses are the supervised processes running now, by name.
func (n *Node) chaosProcesses() []supervisor.Status {
	set := n.agents.processSet()
	if set == nil {
		return nil
	}
	var out []supervisor.Status
	for _, st := range set.sup.Status() {
		if st.State == supervisor.StateRunning && st.PID > 0 {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Chaos injects one scenario into the node for real (POST
// /v1/admin/chaos), recorded in the audit log.
func (n *Node) Chaos(ctx context.Context, scenario string, params map[string]string) (inj *httpapi.ChaosInjection, err error) {
	cc, ok := n.chaosConfig()
	if !ok {
		return nil, n.errChaosOff()
	}
	if chaosComponent(scenario) == "" {
		return nil, nexus.Errorf(nexus.EInvalid, "unknown chaos scenario %q: want one of %s", scenario, strings.Join(chaosScenarios, ", "))
	}
	if why := n.chaosUnavailable(scenario); why != "" {
		return nil, nexus.Errorf(nexus.EConflict, "chaos scenario %s is not available on this node: %s", scenario, why)
	}
	fields := audit.Fields{"scenario": scenario}
	for k, v := range params {
		fields["param."+k] = v
	}
	n.chaosMu.Lock() // one injection at a time
	defer n.chaosMu.Unlock()
	n.chaos.fill = nil
	err = n.audit.Do(ctx, "chaos", fields, func() (audit.Fields, error) {
		if inj, err = n.inject(ctx, cc, scenario, params); err != nil {
			return nil, err
		}
		return audit.Fields{"what": inj.What}, nil
	})
	if err == nil && n.chaos.fill != nil {
		err = n.chaos.fill()
	}
	if err != nil {
		return nil, err
	}
	n.log.Warn("chaos: fault injected", "scenario", scenario, "what", inj.What)
	return inj, nil
}

func (n *Node) inject(ctx context.Context, cc config.Chaos, scenario string, params map[string]string) (*httpapi.ChaosInjection, error) {
	inj := &httpapi.ChaosInjection{Scenario: scenario, Component: chaosComponent(scenario), FoundBy: "health", Details: map[string]any{}}
	var err error
	switch scenario {
	case ChaosCorruptObject:
		err = n.chaosCorrupt(ctx, inj)
	case ChaosIndexDamage:
		err = n.chaosIndex(params, inj)
	case ChaosMemoryPressure:
		err = n.chaosMemory(params, inj)
	case ChaosKillProcess:
		err = n.chaosKill(params, inj)
	case ChaosDiskFill:
		err = n.chaosDisk(cc, params, inj)
	case ChaosProviderFail, ChaosProviderLatency:
		err = n.chaosProvider(scenario, params, inj)
	case ChaosLeaderIsolate:
		err = n.chaosIsolate(params, inj)
	case ChaosRaftLatency:
		err = n.chaosLatency(params, inj)
	}
	if err != nil {
		return nil, err
	}
	return inj, nil
}

// chaosCorrupt writes a backup (so that the damage is repairable, as
// with scheduled backups), then flips a bit in the largest pack.
func (n *Node) chaosCorrupt(ctx context.Context, inj *httpapi.ChaosInjection) error {
	info, err := n.store.Backup(ctx, n.cfg.backupDir())
	if err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "corrupt_object: the backup to repair from could not be written")
	}
	pack, size, err := damage.LargestPack(n.cfg.Dir)
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "corrupt_object: no pack to damage")
	}
	if err := damage.FlipBit(pack, size/2, 0x10); err != nil {
		return nexus.WrapError(nexus.EInternal, err, "corrupt_object: flipping a bit")
	}
	inj.InjectedAt = time.Now().UTC()
	inj.FoundBy = "deep_check"
	inj.What = fmt.Sprintf("backup %s written, then bit 0x10 of byte %d of %s (%d bytes) flipped", filepath.Base(info.Path), size/2, filepath.Base(pack), size)
	inj.Details["pack"], inj.Details["offset"], inj.Details["backup"] = filepath.Base(pack), size/2, filepath.Base(info.Path)
	return nil
}

// chaosIndex deletes the saved index files (mode delete, the default) or
// empties one of them (mode damage). A node that has not saved its index
// yet saves it first.
func (n *Node) chaosIndex(params map[string]string, inj *httpapi.ChaosInjection) error {
	mode := params["mode"]
	if mode == "" {
		mode = "delete"
	}
	if mode != "delete" && mode != "damage" {
		return nexus.Errorf(nexus.EInvalid, "index_damage: mode %q: want delete or damage", mode)
	}
	pattern := filepath.Join(IndexDir(n.cfg.Dir), "*", "*.bin")
	files, _ := filepath.Glob(pattern)
	if len(files) == 0 {
		if err := n.engine.Resave(); err != nil {
			return nexus.WrapError(nexus.EUnavailable, err, "index_damage: the index could not be saved first")
		}
		files, _ = filepath.Glob(pattern)
	}
	if len(files) == 0 {
		return nexus.Errorf(nexus.EConflict, "index_damage: no saved index file under %s", IndexDir(n.cfg.Dir))
	}
	sort.Strings(files)
	var names []string
	if mode == "damage" {
		f := files[rand.IntN(len(files))]
		if err := os.Truncate(f, 0); err != nil {
			return nexus.WrapError(nexus.EInternal, err, "index_damage: emptying %s", filepath.Base(f))
		}
		names = append(names, filepath.Base(f))
		inj.What = "emptied " + filepath.Base(f)
	} else {
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return nexus.WrapError(nexus.EInternal, err, "index_damage: deleting %s", filepath.Base(f))
			}
			names = append(names, filepath.Base(f))
		}
		inj.What = fmt.Sprintf("deleted %d saved index files", len(files))
	}
	inj.InjectedAt = time.Now().UTC()
	inj.Details["mode"], inj.Details["files"] = mode, names
	return nil
}

// chaosHold parses params["hold"] (default def), bounded.
func chaosHold(params map[string]string, def time.Duration) (time.Duration, error) {
	hold := def
	if v := params["hold"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > chaosHoldMax {
			return 0, nexus.Errorf(nexus.EInvalid, "hold %q: want a duration between 0 and %s", v, chaosHoldMax)
		}
		hold = d
	}
	return hold, nil
}

// holdFault records a held fault until its end, refusing a second one.
func (n *Node) holdFault(what string, hold time.Duration) (time.Time, error) {
	s := n.chaosState()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Before(s.until) {
		return time.Time{}, nexus.Errorf(nexus.EConflict, "a held fault is still in place (%s) until %s", s.what, s.until.UTC().Format(time.RFC3339))
	}
	s.until, s.what = time.Now().Add(hold), what
	return s.until, nil
}

// release ends the held fault early (when its injection failed).
func (n *Node) releaseFault() {
	s := n.chaosState()
	s.mu.Lock()
	s.until = time.Time{}
	s.mu.Unlock()
}

// chaosMemory allocates memory up to 95 % of the budget, touching every
// page, holds it, then releases it to the system.
func (n *Node) chaosMemory(params map[string]string, inj *httpapi.ChaosInjection) error {
	budget := memoryBudget(n.cfg.MemoryBudget)
	// The governor looks every MemoryInterval: hold long enough for it
	// to see the pressure come and go.
	hold, err := chaosHold(params, max(5*time.Second, 3*n.cfg.MemoryInterval))
	if err != nil {
		return err
	}
	want := budget*95/100 - goMemory()
	if want <= 0 {
		return nexus.Errorf(nexus.EConflict, "memory_pressure: the node already holds %d of its %d bytes", goMemory(), budget)
	}
	until, err := n.holdFault("memory_pressure", hold)
	if err != nil {
		return err
	}
	const chunk = 1 << 20
	held := make([][]byte, 0, want/chunk+1)
	for got := int64(0); got < want; got += chunk {
		b := make([]byte, chunk)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
	}
	inj.InjectedAt = time.Now().UTC()
	inj.Until = until.UTC()
	inj.What = fmt.Sprintf("%d MiB allocated and touched (budget %d MiB), held for %s", len(held), budget>>20, hold)
	inj.Details["bytes"], inj.Details["budget"], inj.Details["hold"] = int64(len(held))*chunk, budget, hold.String()
	go n.chaosRelease(hold, "memory_pressure: memory released", func() {
		runtime.KeepAlive(held)
		held = nil
		debug.FreeOSMemory()
	})
	return nil
}

// chaosRelease undoes a held fault after hold, or when the node closes.
func (n *Node) chaosRelease(hold time.Duration, what string, undo func()) {
	t := time.NewTimer(hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.ctx.Done():
	}
	undo()
	n.releaseFault()
	n.log.Warn("chaos: " + what)
}

// chaosKill sends SIGKILL to a running supervised process.
func (n *Node) chaosKill(params map[string]string, inj *httpapi.ChaosInjection) error {
	procs := n.chaosProcesses()
	if len(procs) == 0 {
		return nexus.Errorf(nexus.EConflict, "kill_process: no supervised process is running now")
	}
	p := procs[0]
	if name := params["process"]; name != "" {
		i := sort.Search(len(procs), func(i int) bool { return procs[i].Name >= name })
		if i == len(procs) || procs[i].Name != name {
			return nexus.Errorf(nexus.EConflict, "kill_process: no running supervised process %q", name)
		}
		p = procs[i]
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		return nexus.WrapError(nexus.EInternal, err, "kill_process: SIGKILL to %s (pid %d)", p.Name, p.PID)
	}
	inj.InjectedAt = time.Now().UTC()
	inj.What = fmt.Sprintf("SIGKILL sent to supervised process %s (pid %d, %d restarts so far)", p.Name, p.PID, p.Restarts)
	inj.Details["process"], inj.Details["pid"], inj.Details["restarts"] = p.Name, p.PID, p.Restarts
	return nil
}

// chaosDisk fills the data directory's filesystem with a ballast file
// down to max(floor, chaos.disk_floor) bytes free, holds it, then
// removes it.
func (n *Node) chaosDisk(cc config.Chaos, params map[string]string, inj *httpapi.ChaosInjection) error {
	hold, err := chaosHold(params, 5*time.Second)
	if err != nil {
		return err
	}
	floor := int64(cc.DiskFloor)
	if v := params["floor"]; v != "" {
		f, err := strconv.ParseInt(v, 10, 64)
		if err != nil || f < 0 {
			return nexus.Errorf(nexus.EInvalid, "disk_fill: floor %q: want a number of bytes", v)
		}
		floor = max(floor, f)
	}
	free, err := diskFree(n.cfg.Dir)
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "disk_fill: the free space of %s", n.cfg.Dir)
	}
	size := free - floor
	if size <= 0 {
		return nexus.Errorf(nexus.EConflict, "disk_fill: %d bytes free, already at or below the floor of %d", free, floor)
	}
	until, err := n.holdFault("disk_fill", hold)
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.Dir, fmt.Sprintf("%s%d", ballastPrefix, time.Now().UnixNano()))
	inj.Until = until.UTC()
	inj.What = fmt.Sprintf("ballast %s of %d bytes to leave %d bytes free (floor %d), held for %s", filepath.Base(path), size, floor, floor, hold)
	inj.Details["ballast"], inj.Details["floor"] = filepath.Base(path), floor
	// The ballast is written once the audit log has recorded the outcome:
	// a full disk would keep it from being recorded.
	n.chaos.fill = func() error {
		wrote, err := writeBallast(path, size)
		if err != nil && !isNoSpace(err) {
			os.Remove(path)
			n.releaseFault()
			return nexus.WrapError(nexus.EInternal, err, "disk_fill: writing the ballast")
		}
		left, _ := diskFree(n.cfg.Dir)
		inj.InjectedAt = time.Now().UTC()
		inj.What = fmt.Sprintf("ballast %s of %d bytes written, %d bytes left free (floor %d), held for %s", filepath.Base(path), wrote, left, floor, hold)
		inj.Details["bytes"], inj.Details["free_after"] = wrote, left
		go n.chaosRelease(hold, "disk_fill: ballast removed", func() {
			if err := os.Remove(path); err != nil {
				n.log.Error("chaos: the ballast could not be removed: remove it by hand", "path", path, "err", err)
			}
		})
		return nil
	}
	return nil
}

// ballastPrefix starts the name of a disk_fill ballast file in the data
// directory.
const ballastPrefix = "chaos-ballast-"

// removeBallast removes the ballast files of disk_fill that a node
// killed during the hold left in its data directory (dir): the node
// removes its ballast at the end of the hold or when it closes, never
// after a SIGKILL. It runs when the node opens, before anything else
// needs the space; it returns the names removed.
func removeBallast(dir string, log *slog.Logger) []string {
	files, _ := filepath.Glob(filepath.Join(dir, ballastPrefix+"*"))
	var removed []string
	for _, f := range files {
		st, err := os.Lstat(f)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(f); err != nil {
			log.Error("chaos: a ballast file left by an earlier run could not be removed: remove it by hand", "path", f, "err", err)
			continue
		}
		log.Warn("chaos: removed a ballast file left by a disk_fill whose node stopped during the hold", "path", f, "bytes", st.Size())
		removed = append(removed, filepath.Base(f))
	}
	return removed
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFree is the space free to the node's user on dir's filesystem.
func diskFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// writeBallast writes size bytes of zeros to a new file at path, synced,
// and returns how many were written.
func writeBallast(path string, size int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1<<20)
	var wrote int64
	for wrote < size {
		k := int(min(int64(len(buf)), size-wrote))
		m, werr := f.Write(buf[:k])
		wrote += int64(m)
		if werr != nil {
			f.Close()
			return wrote, werr
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return wrote, err
	}
	return wrote, f.Close()
}
