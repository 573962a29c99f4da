package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
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
	// Embedder of the search index; nil: the built-in one.
	Embedder nexus.Embedder
	// Progress, if set, makes the reporter of a long rebuild.
	Progress func(what string) func(done, total int)
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
	store, repaired, err := OpenRepairing(ctx, cfg.Dir, gitstore.Options{Progress: progressOf(cfg.Progress, "catalog")}, cfg.Sources)
	if err != nil {
		return []recovery.Step{{Component: nexus.ComponentGit, Status: recovery.Failed, Took: time.Since(start), At: start.UTC(),
			Reason: describe(err) + "; " + adviceOffline}}, nil
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
	return recovery.Component{
		Name: nexus.ComponentGit, Critical: true, Health: health,
		Failing: func(ctx context.Context, h nexus.ComponentHealth) string {
			if why := notHealthy(ctx, h); why != "" {
				return why
			}
			return strings.Join(repaired, "; ")
		},
		Recover: func(ctx context.Context) (string, error) {
			if h := health.CheckHealth(ctx); h.Status == nexus.StatusUnhealthy {
				return recoverRepository(ctx, store, sources(), adviceOffline)
			}
			return strings.Join(repaired, "; ") + fmt.Sprintf("; deep check clean (%d objects re-hashed, %d commits)", rep.Objects, rep.Commits), nil
		},
	}
}

// offlineIndex is the search index of a stopped node: failing when the
// saved index is missing or fails its checks; recovered by rebuilding it
// now (the vectors come from git, nothing is embedded again).
func offlineIndex(store *gitstore.Store, cfg OfflineConfig) recovery.Component {
	emb := cfg.Embedder
	if emb == nil {
		emb = embed.NewHashing(embed.DefaultDimension)
	}
	dir := IndexDir(cfg.Dir)
	check := func() error {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return errors.New("no saved index")
		}
		return search.VerifySaved(store, emb, dir)
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
			if err := os.RemoveAll(dir); err != nil {
				return "", err
			}
			e, err := search.Open(store, emb, search.Options{Dir: dir, Log: store.SideLog()})
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
