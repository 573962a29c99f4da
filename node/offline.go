package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

// OfflineConfig is a stopped node's data directory, for RecoverOffline.
type OfflineConfig struct {
	// Dir is the data directory; it must hold a store.
	Dir string
	// Sources are the backups (mirror, bundles) to repair damaged objects
	// from, best first; nil: RepairSources(Mirror, Dir/backups).
	Sources []string
	// Embedder of the search index; nil: the model the node served last
	// when it is a learned one kept on refs/nexus/models/cooc (its index is
	// saved), else the built-in one.
	Embedder nexus.Embedder
	// Learned makes the search index use the newest learned model kept on
	// refs/nexus/models/cooc (search.embedder: cooc), or the built-in one
	// while there is none, instead of Embedder.
	Learned bool
	// Progress, if set, makes the reporter of a long rebuild.
	Progress func(what string) func(done, total int)
	// Encrypt gives the master key of a store encrypted at rest.
	Encrypt *gitstore.Encryption
}

// RecoverOffline runs the cascade of a node over its stopped data
// directory: the same components, in the same order, with the same
// recovery as a running node's, except that the repository is opened
// (repaired from the sources if it cannot be) and deep-checked first, and
// a damaged search index is rebuilt now rather than by the next start.
// The steps say what each component was found in and what was done; a
// failed critical component skips the rest.
func RecoverOffline(ctx context.Context, cfg OfflineConfig) ([]recovery.Step, error) {
	start := time.Now()
	store, repaired, err := OpenRepairing(ctx, cfg.Dir, gitstore.Options{Progress: progressOf(cfg.Progress, "catalog"), Encrypt: cfg.Encrypt}, cfg.Sources)
	if errors.Is(err, gitstore.ErrInUse) {
		return nil, err // not a failure of the repository: another process holds it
	}
	if err != nil {
		return []recovery.Step{{Component: nexus.ComponentGit, Status: recovery.Failed, Took: time.Since(start), At: start.UTC(),
			Reason: nexus.Describe(err) + "; " + adviceOffline}}, nil
	}
	defer store.Close()
	rep, err := store.Fsck(ctx, true)
	if err != nil {
		return nil, err
	}
	sources := func() []string { return cfg.Sources }
	comps := nodeComponents(store, nil, sources, recovery.Component{Name: nexus.ComponentAgents})
	comps[0] = offlineRepository(store, sources, repaired, rep)
	comps[3] = offlineIndex(store, cfg)
	return recovery.New(comps, recovery.Options{}).Run(ctx), nil
}

// offlineRepository is the git component of a stopped node: failing when
// the open had to repair it or the deep check found damage; recovered
// from the sources.
func offlineRepository(store *gitstore.Store, sources func() []string, repaired []string, rep *gitstore.FsckReport) recovery.Component {
	health := store.HealthCheckers()[nexus.ComponentGit]
	reported := false // the repair at open, once
	return recovery.Component{
		Name: nexus.ComponentGit, Critical: true, Health: health,
		Failing: func(ctx context.Context, h nexus.ComponentHealth) string {
			if why := notHealthy(ctx, h); why != "" || reported {
				return why
			}
			return strings.Join(repaired, "; ")
		},
		Recover: func(ctx context.Context) (string, error) {
			if h := health.CheckHealth(ctx); h.Status == nexus.StatusUnhealthy {
				return recoverRepository(ctx, store, sources(), adviceOffline)
			}
			reported = true
			return strings.Join(repaired, "; ") + fmt.Sprintf("; deep check clean (%d objects re-hashed, %d commits)", rep.Objects, rep.Commits), nil
		},
	}
}

// offlineIndex is the search index of a stopped node: failing when the
// saved index is missing or fails its checks; recovered by rebuilding it
// now (the vectors come from git, nothing is embedded again).
func offlineIndex(store *gitstore.Store, cfg OfflineConfig) recovery.Component {
	emb, embErr := offlineEmbedder(context.Background(), store, cfg)
	dir := IndexDir(cfg.Dir)
	check := func() error {
		if embErr != nil {
			return embErr
		}
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return errors.New("no saved index")
		}
		return search.VerifySaved(store, emb, dir, indexSealer(store))
	}
	return recovery.Component{
		Name: nexus.ComponentIndex,
		Health: nexus.HealthFunc(func(context.Context) nexus.ComponentHealth {
			if err := check(); err != nil {
				return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: err.Error()}
			}
			return nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{"saved_index": "verified"}}
		}),
		Recover: func(ctx context.Context) (string, error) {
			why := check()
			if embErr != nil {
				return "", embErr
			}
			if err := os.RemoveAll(dir); err != nil {
				return "", err
			}
			e, err := search.Open(store, emb, search.Options{Dir: dir, Log: store.SideLog(), Seal: indexSealer(store)})
			if err != nil {
				return "", err
			}
			if err := e.CatchUp(ctx, progressOf(cfg.Progress, "index")); err != nil {
				e.Close()
				return "", err
			}
			if err := e.Close(); err != nil {
				return "", err
			}
			return fmt.Sprintf("%v: rebuilt from git", why), nil
		},
	}
}

func progressOf(p func(what string) func(done, total int), what string) func(done, total int) {
	if p == nil {
		return nil
	}
	return p(what)
}

// FsckOptions say how deep FsckOffline looks and whether it repairs.
type FsckOptions struct {
	// Deep re-reads every object and walks all history; otherwise refs
	// and the catalog only.
	Deep bool
	// Repair applies the repair policy: derived state is rebuilt, orphans
	// marked, a damaged index removed (the next start rebuilds it) and, on
	// a deep check, damaged objects repaired from the sources.
	Repair bool
}

// Fsck statuses, after e2fsck's exit codes.
const (
	FsckClean    = "clean"    // nothing found
	FsckRepaired = "repaired" // problems found, all repaired
	FsckDamaged  = "damaged"  // problems left
)

// FsckResult is what FsckOffline found and did.
type FsckResult struct {
	Store *gitstore.FsckReport `json:"store"`
	// Index is "ok", "none" (no saved index) or what is wrong with it.
	Index string `json:"index"`
	// Repaired lists each piece of damage found and what was done.
	Repaired []string `json:"repaired"`
	Status   string   `json:"status"`
}

// FsckOffline checks a stopped node's data directory: the repository,
// the catalog and the saved search index, and repairs what opts allow.
func FsckOffline(ctx context.Context, cfg OfflineConfig, opts FsckOptions) (*FsckResult, error) {
	gopts := gitstore.Options{Progress: progressOf(cfg.Progress, "catalog"), Encrypt: cfg.Encrypt}
	var store *gitstore.Store
	var opened []string
	var err error
	if opts.Repair {
		store, opened, err = OpenRepairing(ctx, cfg.Dir, gopts, cfg.Sources)
	} else {
		store, err = gitstore.Open(cfg.Dir, gopts)
	}
	if err != nil {
		return nil, err
	}
	defer store.Close()
	res := &FsckResult{Repaired: []string{}}
	if len(opened) > 0 {
		res.Repaired = append(res.Repaired, repairLine("repository", opened[0], strings.Join(opened[1:], "; ")))
	}
	if res.Store, err = store.Fsck(ctx, opts.Deep); err != nil {
		return nil, err
	}
	res.Index = checkSavedIndex(store, cfg)
	if opts.Repair {
		if err := repairOffline(ctx, store, cfg, res); err != nil {
			return nil, err
		}
	}
	switch {
	case !res.Store.Clean():
		res.Status = FsckDamaged
	case len(res.Repaired) > 0:
		res.Status = FsckRepaired
	default:
		res.Status = FsckClean
	}
	return res, nil
}

// repairOffline applies the repair policy to what FsckOffline found.
func repairOffline(ctx context.Context, store *gitstore.Store, cfg OfflineConfig, res *FsckResult) error {
	fix, err := store.RepairDerived(ctx, res.Store)
	for _, r := range fix.Repaired {
		res.Repaired = append(res.Repaired, repairLine(string(r.Kind), r.Damage, r.Action))
	}
	rep := *res.Store
	rep.Problems = fix.Left
	if err != nil {
		rep.Problems = append(rep.Problems, gitstore.Problem{Kind: gitstore.ProblemRepair, Message: err.Error()})
	}
	res.Store = &rep
	if res.Index != "ok" && res.Index != "none" {
		if err := os.RemoveAll(IndexDir(cfg.Dir)); err != nil {
			return err
		}
		res.Repaired = append(res.Repaired, repairLine("search index", res.Index, "removed; the server rebuilds it at start"))
	}
	if res.Store.Clean() || !rep.Deep || len(cfg.Sources) == 0 {
		return nil
	}
	found := sumProblems(res.Store.Problems)
	did, err := store.RepairFrom(ctx, cfg.Sources)
	if did != "" {
		res.Repaired = append(res.Repaired, repairLine("objects", found, did))
	}
	if last := store.LastDeepCheck(); last != nil {
		res.Store = last
	}
	if err != nil {
		res.Store.Problems = append(res.Store.Problems, gitstore.Problem{Kind: gitstore.ProblemRepair, Message: nexus.Describe(err)})
	}
	return nil
}

// repairLine is one repair: the part, the damage found there, and what
// was done.
func repairLine(part, damage, done string) string {
	return fmt.Sprintf("%s: %s -> %s", part, damage, done)
}

// sumProblems sums up problems: the one, or how many and the first.
func sumProblems(ps []gitstore.Problem) string {
	if len(ps) == 1 {
		return ps[0].String()
	}
	return fmt.Sprintf("%d problems, first %s", len(ps), ps[0])
}

// checkSavedIndex verifies the saved search index against its checksums
// and the store: "ok", "none", or the problem.
func checkSavedIndex(store *gitstore.Store, cfg OfflineConfig) string {
	if _, err := os.Stat(IndexDir(cfg.Dir)); errors.Is(err, os.ErrNotExist) {
		return "none"
	}
	emb, err := offlineEmbedder(context.Background(), store, cfg)
	if err != nil {
		return err.Error()
	}
	if err := search.VerifySaved(store, emb, IndexDir(cfg.Dir), indexSealer(store)); err != nil {
		return err.Error()
	}
	return "ok"
}

// Reindex rebuilds the search index of a stopped node's data directory
// from scratch, taking the vectors kept in git (embedding only what has
// none), and returns the index's figures.
func Reindex(ctx context.Context, cfg OfflineConfig) (search.Stats, error) {
	store, err := gitstore.Open(cfg.Dir, gitstore.Options{Progress: progressOf(cfg.Progress, "catalog"), Encrypt: cfg.Encrypt})
	if err != nil {
		return search.Stats{}, err
	}
	defer store.Close()
	emb, err := offlineEmbedder(ctx, store, cfg) // before the saved index goes: it may name the model
	if err != nil {
		return search.Stats{}, err
	}
	if err := os.RemoveAll(IndexDir(cfg.Dir)); err != nil {
		return search.Stats{}, err
	}
	e, err := search.Open(store, emb, search.Options{Dir: IndexDir(cfg.Dir), Log: store.SideLog(), Resolve: resolver(store), Seal: indexSealer(store)})
	if err != nil {
		return search.Stats{}, err
	}
	if err := e.CatchUp(ctx, progressOf(cfg.Progress, "index")); err != nil {
		e.Close()
		return search.Stats{}, err
	}
	st := e.Stats()
	return st, e.Close()
}

// indexSealer seals the saved search index of an encrypted store.
func indexSealer(s *gitstore.Store) search.Sealer {
	if f := s.FileSealer(); f != nil {
		return f
	}
	return nil
}
