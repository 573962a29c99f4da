package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
)

// nodeComponents is the cascade of a running node, in recovery order:
// what each component's failure looks like and how the node repairs it
// without stopping. sources lists the backups to repair objects from,
// best first (the mirror, then the bundles newest first); agents is the
// agents layer (agents_recovery.go).
func nodeComponents(store *gitstore.Store, engine *currentEngine, sources func() []string, agents recovery.Component) []recovery.Component {
	checks := store.HealthCheckers()
	comps := []recovery.Component{
		{
			Name: nexus.ComponentGit, Critical: true, Health: checks[nexus.ComponentGit],
			Recover: func(ctx context.Context) (string, error) {
				return recoverRepository(ctx, store, sources(), adviceOnline)
			},
		},
		{
			Name: nexus.ComponentStore, Critical: true, Health: checks[nexus.ComponentStore],
			Failing: func(ctx context.Context, h nexus.ComponentHealth) string {
				if why := notHealthy(ctx, h); why != "" {
					return why
				}
				why, err := store.OrphansToMark(ctx)
				if err != nil {
					return "cannot read the orphan marks: " + err.Error()
				}
				return why
			},
			Recover: func(ctx context.Context) (string, error) {
				return recoverCatalog(ctx, store, checks[nexus.ComponentStore])
			},
		},
		{
			Name: nexus.ComponentCache, Health: checks[nexus.ComponentCache],
			Failing: func(context.Context, nexus.ComponentHealth) string {
				if st := store.CacheStats(); st.CorruptDrops > st.ClearedDrops {
					return fmt.Sprintf("%d cache entries failed their checksum", st.CorruptDrops-st.ClearedDrops)
				}
				return ""
			},
			Recover: func(context.Context) (string, error) {
				n := store.RecoverCache()
				return fmt.Sprintf("every entry re-verified (%d more bad) and the cache emptied: it refills from git", n), nil
			},
		},
		{Name: nexus.ComponentIndex},
		agents,
	}
	if engine != nil {
		comps[3] = recovery.Component{
			Name: nexus.ComponentIndex, Health: engine,
			Failing: func(_ context.Context, h nexus.ComponentHealth) string {
				if d := engine.FileDamage(); d != "" {
					return "saved index: " + d
				}
				if h.Status == nexus.StatusUnhealthy {
					return h.Error
				}
				return ""
			},
			Recover: func(context.Context) (string, error) {
				if err := engine.Resave(); err != nil {
					return "", err
				}
				if err := engine.CheckFiles(true); err != nil {
					return "", err
				}
				return "saved index written again from memory and verified", nil
			},
		}
	}
	return comps
}

// recoverCatalog rewrites a moved main, then applies the store's repair
// policy to what the cascade found: a catalog that differs from git is
// rebuilt, the contexts whose chain is broken are marked.
func recoverCatalog(ctx context.Context, store *gitstore.Store, health nexus.HealthChecker) (string, error) {
	var did []string
	fixed, err := store.RepairRef(ctx)
	if err != nil {
		return "", err
	}
	if fixed != "" {
		did = append(did, fixed)
	}
	found := &gitstore.FsckReport{}
	if h := health.CheckHealth(ctx); h.Status != nexus.StatusHealthy {
		found.Problems = append(found.Problems, gitstore.Problem{Kind: gitstore.ProblemCatalog, Message: h.Error})
	}
	due, err := store.OrphansToMark(ctx)
	if err != nil {
		return "", err
	}
	if due != "" {
		found.Problems = append(found.Problems, gitstore.Problem{Kind: gitstore.ProblemChain, Message: due})
	}
	fix, err := store.RepairDerived(ctx, found)
	for _, r := range fix.Repaired {
		did = append(did, r.String())
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", strings.Join(did, "; "), err)
	}
	if due != "" && len(fix.Orphans) > 0 && len(did) == 0 {
		did = append(did, fmt.Sprintf("%d orphaned contexts already marked", len(fix.Orphans)))
	}
	return strings.Join(did, "; "), nil
}

func notHealthy(_ context.Context, h nexus.ComponentHealth) string {
	if h.Status == nexus.StatusHealthy {
		return ""
	}
	return h.Error
}

// What the operator does when a repository cannot be repaired.
const (
	adviceOnline  = "stop the node, then `nexus recover --data DIR` or restore a backup into a new data directory"
	adviceOffline = "restore the newest backup into a new data directory: nexus backup list, then nexus backup restore FILE --data NEWDIR"
)

// recoverRepository repairs what a running node can: a damaged main ref
// is rewritten from the acknowledged head, damaged objects are restored
// from the backups. A store that stopped on an uncertain write cannot be
// trusted until it is reopened: that needs a restart.
// advice is what the operator does when the repair fails.
func recoverRepository(ctx context.Context, store *gitstore.Store, sources []string, advice string) (string, error) {
	if err := store.Ready(); err != nil {
		return "", fmt.Errorf("%s; restart the node: its start-up check reopens the repository", nexus.ErrorMessage(err))
	}
	did, err := store.RepairRef(ctx)
	if err != nil {
		return "", err
	}
	if h := store.HealthCheckers()[nexus.ComponentGit].CheckHealth(ctx); h.Status != nexus.StatusUnhealthy {
		return did, nil
	}
	fixed, err := store.RepairFrom(ctx, sources)
	if err != nil {
		if fixed != "" {
			advice = fixed + "; " + advice
		}
		return "", fmt.Errorf("%s; %s", err, advice)
	}
	return strings.TrimPrefix(did+"; ", "; ") + fixed, nil
}

// RepairSources lists where damaged objects can be repaired from: the
// mirror first (pushed most often), then the bundles, newest first.
func RepairSources(mirror, backups string) func() []string {
	return func() []string {
		var out []string
		if mirror != "" {
			out = append(out, mirror)
		}
		if list, err := gitstore.ListBackups(backups); err == nil {
			for _, b := range list {
				out = append(out, b.Path)
			}
		}
		return out
	}
}

// OpenRepairing opens the store; when the repository cannot be opened
// for damage (not for a lock held by another process), it repairs it
// offline from sources and opens it again, returning what it did.
func OpenRepairing(ctx context.Context, data string, opts gitstore.Options, sources []string) (*gitstore.Store, []string, error) {
	store, err := gitstore.Open(data, opts)
	if err == nil {
		return store, nil, nil
	}
	if code := nexus.ErrorCode(err); code == nexus.EConflict || code == nexus.EInvalid || errors.Is(err, fs.ErrPermission) {
		return nil, nil, err
	}
	if _, serr := os.Stat(filepath.Join(data, "repo.git", "HEAD")); serr != nil {
		return nil, nil, err // not a repository at all: nothing to repair
	}
	did, rerr := gitstore.RepairOffline(ctx, data, sources)
	if rerr != nil {
		return nil, did, fmt.Errorf("%s\nrepair failed: %v", nexus.Describe(err), rerr)
	}
	store, err2 := gitstore.Open(data, opts)
	if err2 != nil {
		return nil, did, fmt.Errorf("%s\nstill cannot open after repair (%s): %s", nexus.Describe(err), strings.Join(did, "; "), nexus.Describe(err2))
	}
	return store, append([]string{"could not open: " + nexus.Describe(err)}, did...), nil
}
