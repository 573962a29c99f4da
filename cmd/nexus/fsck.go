package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

// Exit codes of `nexus fsck`, after e2fsck: 0 clean, 1 problems found and
// repaired, 4 problems left (the store is damaged). 3, for fsck, restore
// and recover: another process (a running server) holds the data directory.
const (
	fsckClean    = 0
	fsckRepaired = 1
	storeInUse   = 3
	fsckDamaged  = 4
)

// exitCode is an error that carries the process's exit code.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return e.msg }

// fsckResult is what `nexus fsck --json` prints.
type fsckResult struct {
	Store    *gitstore.FsckReport `json:"store"`
	Index    string               `json:"index"` // "ok", "none", or the problem
	Repaired []string             `json:"repaired"`
	Status   string               `json:"status"` // clean, repaired, damaged
}

func runFsck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	deep := fs.Bool("deep", true, "re-read every object and walk all history (false: refs and catalog only)")
	repair := fs.Bool("repair", true, "rebuild damaged derived state (catalog, search index)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	from := fs.String("backup", "", "backup (bundle or mirror) to repair damaged objects from (default: --mirror, then DATA/backups newest first)")
	mirror := fs.String("mirror", "", "mirror repository to repair damaged objects from")
	server := serverFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if c, err := adminClient(fs, *server, "backup", "mirror"); c != nil || err != nil {
		if err != nil {
			return err
		}
		return fsckOnline(ctx, c, *deep, *repair, *asJSON, stdout)
	}
	res := &fsckResult{Repaired: []string{}}
	var store *gitstore.Store
	var opened []string
	var err error
	if *repair {
		store, opened, err = openRepairing(ctx, *data, gitstore.Options{Progress: newProgress(stderr, "catalog")}, fixSources(*from, *mirror, *data))
	} else {
		store, err = gitstore.Open(*data, gitstore.Options{Progress: newProgress(stderr, "catalog")})
	}
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("fsck", err)
	}
	if err != nil {
		return exitCode{fsckDamaged, fmt.Sprintf("the store cannot be opened: %s\n"+
			"The git repository itself is damaged: restore it from a backup (`nexus backup list`), "+
			"or inspect it with `git --git-dir %s fsck --full`.", describe(err), filepath.Join(*data, "repo.git"))}
	}
	defer store.Close()
	if res.Store, err = store.Fsck(ctx, *deep); err != nil {
		return err
	}
	res.Repaired = append(res.Repaired, opened...)
	res.Index = checkIndex(ctx, store, *data)
	if *repair {
		fsckRepair(res, store, *data)
		if !res.Store.Clean() && *deep {
			repairObjects(ctx, res, store, fixSources(*from, *mirror, *data))
		}
	}
	return finishFsck(stdout, res, *asJSON)
}

// finishFsck prints the result and returns its exit code.
func finishFsck(stdout io.Writer, res *fsckResult, asJSON bool) error {
	switch {
	case !res.Store.Clean():
		res.Status = "damaged"
	case len(res.Repaired) > 0:
		res.Status = "repaired"
	default:
		res.Status = "clean"
	}
	if asJSON {
		printJSON(stdout, res)
	} else {
		printFsck(stdout, res)
	}
	switch res.Status {
	case "damaged":
		return exitCode{fsckDamaged, fmt.Sprintf("%d problems left: the repository is damaged", len(res.Store.Problems))}
	case "repaired":
		return exitCode{fsckRepaired, "problems found and repaired"}
	}
	return nil
}

// checkIndex verifies the saved search index against its checksums and
// the store.
func checkIndex(ctx context.Context, store *gitstore.Store, data string) string {
	if _, err := os.Stat(indexDir(data)); os.IsNotExist(err) {
		return "none"
	}
	emb, err := newEmbedder(ctx)
	if err != nil {
		return "cannot check: " + err.Error()
	}
	if err := search.VerifySaved(store, emb, indexDir(data)); err != nil {
		return err.Error()
	}
	return "ok"
}

// fsckRepair rebuilds derived state that failed its checks: the catalog
// (rebuilt from git by the next open) and the search index (rebuilt by the
// next serve, taking vectors from git).
func fsckRepair(res *fsckResult, store *gitstore.Store, data string) {
	var left []gitstore.Problem
	for _, p := range res.Store.Problems {
		if p.Kind == "catalog" || p.Kind == "cache" {
			continue
		}
		left = append(left, p)
	}
	if len(left) < len(res.Store.Problems) {
		if err := store.RebuildCatalog(); err != nil {
			left = append(left, gitstore.Problem{Kind: "catalog", Message: "rebuild failed: " + err.Error()})
		} else {
			res.Repaired = append(res.Repaired, "catalog rebuilt from git")
		}
	}
	res.Store.Problems = left
	if res.Store.Deep {
		if list, changed, err := store.MarkOrphans(context.Background()); err != nil {
			res.Store.Problems = append(res.Store.Problems, gitstore.Problem{Kind: "chain", Message: "cannot mark orphans: " + err.Error()})
		} else if changed {
			res.Repaired = append(res.Repaired, fmt.Sprintf("%d orphaned contexts marked on refs/nexus/%s (never relinked)", len(list), gitstore.OrphansRef))
		}
	}
	if res.Index != "ok" && res.Index != "none" {
		if err := os.RemoveAll(indexDir(data)); err == nil {
			res.Repaired = append(res.Repaired, "search index removed: the server rebuilds it at start ("+res.Index+")")
		}
	}
}

// fixSources lists where to repair objects from: the backup asked for,
// else the mirror and every bundle in DATA/backups, newest first.
func fixSources(from, mirror, data string) []string {
	if from != "" {
		return []string{from}
	}
	return repairSources(mirror, backupDir(data))()
}

// repairObjects repairs damaged objects from the backups, best first,
// and reports the deep check that confirms it.
func repairObjects(ctx context.Context, res *fsckResult, store *gitstore.Store, sources []string) {
	if len(sources) == 0 {
		return
	}
	did, err := store.RepairFrom(ctx, sources)
	if did != "" {
		res.Repaired = append(res.Repaired, did)
	}
	if last := store.LastDeepCheck(); last != nil {
		res.Store = last
	}
	if err != nil {
		res.Store.Problems = append(res.Store.Problems, gitstore.Problem{Kind: "repair", Message: describe(err)})
	}
}

func printFsck(w io.Writer, res *fsckResult) {
	r := res.Store
	mode := "fast"
	if r.Deep {
		mode = "deep"
	}
	fmt.Fprintf(w, "%s check of %s: %d packs, %d objects re-hashed, %d commits, %d context files in %s\n",
		mode, r.Head, r.Packs, r.Objects, r.Commits, r.Contexts, r.Took.Round(1e6))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	fmt.Fprintf(w, "search index: %s\n", res.Index)
	for _, s := range res.Repaired {
		fmt.Fprintf(w, "REPAIRED %s\n", s)
	}
	fmt.Fprintln(w, res.Status)
}

// serverFlag adds --server to an admin verb (fsck, restore, recover).
func serverFlag(fs *flag.FlagSet) *string {
	return fs.String("server", env("NEXUS_SERVER", ""), "URL of a running node to act on through its admin API (token from NEXUS_TOKEN) "+
		"instead of opening --data, which the node holds (then the verb exits 3) (env NEXUS_SERVER; --data given wins over it)")
}

// adminClient returns a client of the node at server when the verb is to
// act through it: --server given, or NEXUS_SERVER set and --data not
// given. offline names the flags that only apply to a data directory.
func adminClient(fs *flag.FlagSet, server string, offline ...string) (*httpapi.Client, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["server"] && set["data"] {
		return nil, usagef("--server and --data exclude each other: --server acts through a running node, --data opens the directory of a stopped one")
	}
	if server == "" || set["data"] {
		return nil, nil
	}
	for _, name := range offline {
		if set[name] {
			return nil, usagef("--%s applies to a stopped node's --data; a running node repairs from its own mirror and backups", name)
		}
	}
	cf := clientFlags{server: server, token: os.Getenv("NEXUS_TOKEN")}
	return cf.client(), nil
}

// inUse explains that another process holds the data directory and how
// to reach the node through its server instead (exit 3).
func inUse(verb string, err error) error {
	return exitCode{storeInUse, fmt.Sprintf("the store is in use, nothing was changed: %s\n"+
		"if that is a running server, act through it with `nexus %s --server URL` (or set NEXUS_SERVER); else let it finish or stop it", nexus.ErrorMessage(err), verb)}
}

// fsckOnline checks a running node through its admin API. With repair it
// runs the node's recovery, which repairs what the check found, and checks
// again; the node runs that recovery after every check anyway.
func fsckOnline(ctx context.Context, c *httpapi.Client, deep, repair, asJSON bool, stdout io.Writer) error {
	first, err := c.Fsck(ctx, deep)
	if err != nil {
		return err
	}
	res := &fsckResult{Store: first, Index: "not checked (--repair=false: the node checks it)", Repaired: []string{}}
	if repair {
		rec, err := c.Recover(ctx)
		if err != nil {
			return err
		}
		res.Index = fromSteps(res, rec.Steps)
		if !first.Clean() {
			if res.Store, err = c.Fsck(ctx, deep); err != nil {
				return err
			}
			if res.Store.Clean() && len(res.Repaired) == 0 {
				res.Repaired = append(res.Repaired, fmt.Sprintf("%d problems repaired by the node's recovery", len(first.Problems)))
			}
		}
	}
	return finishFsck(stdout, res, asJSON)
}

// fromSteps adds what the node's recovery repaired to res and returns the
// index's state as offline fsck says it: ok, none, or the problem.
func fromSteps(res *fsckResult, steps []recovery.Step) string {
	index := "none"
	for _, s := range steps {
		if s.Status == recovery.Recovered {
			res.Repaired = append(res.Repaired, s.Component+": "+s.Reason)
		}
		if s.Component != nexus.ComponentIndex {
			continue
		}
		switch s.Status {
		case recovery.OK, recovery.Recovered:
			index = "ok"
		case recovery.Disabled:
			index = "none"
		default:
			index = strings.TrimSpace(s.Status + ": " + s.Reason)
		}
	}
	return index
}
