package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// Exit codes of `nexus fsck`, after e2fsck: 0 clean, 1 problems found and
// repaired, 4 problems left (the store is damaged).
const (
	fsckClean    = 0
	fsckRepaired = 1
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
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := needStore(*data); err != nil {
		return err
	}
	res := &fsckResult{Repaired: []string{}}
	var store *gitstore.Store
	var opened []string
	var err error
	catalog := startProgress(stderr, "catalog")
	if *repair {
		store, opened, err = openRepairing(ctx, *data, gitstore.Options{Progress: catalog.report}, fixSources(*from, *mirror, *data))
	} else {
		store, err = gitstore.Open(*data, gitstore.Options{Progress: catalog.report})
	}
	catalog.finish()
	if err != nil {
		return exitCode{fsckDamaged, fmt.Sprintf("the store cannot be opened: %s\n"+
			"The git repository itself is damaged: restore it from a backup (`nexus backup list`), "+
			"or inspect it with `git --git-dir %s fsck --full`.", describe(err), filepath.Join(*data, "repo.git"))}
	}
	defer store.Close()
	if res.Store, err = store.Fsck(ctx, *deep); err != nil {
		return err
	}
	if len(opened) > 0 {
		res.Repaired = append(res.Repaired, openedRepaired(opened))
	}
	res.Index = checkIndex(ctx, store, *data)
	if *repair {
		fsckRepair(res, store, *data)
		if !res.Store.Clean() && *deep {
			repairObjects(ctx, res, store, fixSources(*from, *mirror, *data))
		}
	}
	switch {
	case !res.Store.Clean():
		res.Status = "damaged"
	case len(res.Repaired) > 0:
		res.Status = "repaired"
	default:
		res.Status = "clean"
	}
	if *asJSON {
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
// next serve, taking vectors from git). Each repair is reported as the
// damage found, then what was done.
func fsckRepair(res *fsckResult, store *gitstore.Store, data string) {
	var left, derived []gitstore.Problem
	for _, p := range res.Store.Problems {
		if p.Kind == "catalog" || p.Kind == "cache" {
			derived = append(derived, p)
			continue
		}
		left = append(left, p)
	}
	if len(derived) > 0 {
		if err := store.RebuildCatalog(); err != nil {
			left = append(left, gitstore.Problem{Kind: "catalog", Message: "rebuild failed: " + err.Error()})
		} else {
			res.Repaired = append(res.Repaired, repaired("catalog", damage(derived), "rebuilt from git"))
		}
	}
	res.Store.Problems = left
	if res.Store.Deep {
		if list, changed, err := store.MarkOrphans(context.Background()); err != nil {
			res.Store.Problems = append(res.Store.Problems, gitstore.Problem{Kind: "chain", Message: "cannot mark orphans: " + err.Error()})
		} else if changed && len(list) == 0 {
			res.Repaired = append(res.Repaired, repaired("chain", "no context marked as orphaned is orphaned any more",
				"mark cleared on refs/nexus/"+gitstore.OrphansRef))
		} else if changed {
			res.Repaired = append(res.Repaired, repaired("chain", orphans(list),
				"marked on refs/nexus/"+gitstore.OrphansRef+" (never relinked)"))
		}
	}
	if res.Index != "ok" && res.Index != "none" {
		if err := os.RemoveAll(indexDir(data)); err == nil {
			res.Repaired = append(res.Repaired, repaired("search index", res.Index, "removed; the server rebuilds it at start"))
		}
	}
}

// repaired is one REPAIRED line: the part, the damage found there, and
// what was done.
func repaired(part, damage, done string) string {
	return fmt.Sprintf("%s: %s -> %s", part, damage, done)
}

// damage sums up problems: the one, or how many and the first.
func damage(ps []gitstore.Problem) string {
	if len(ps) == 1 {
		return ps[0].String()
	}
	return fmt.Sprintf("%d problems, first %s", len(ps), ps[0])
}

// orphans sums up a set of orphaned contexts.
func orphans(list []gitstore.Orphan) string {
	if len(list) == 1 {
		return fmt.Sprintf("context %s lost its parent %s (%s)", list[0].ID, list[0].Parent, list[0].Reason)
	}
	return fmt.Sprintf("%d contexts lost their parent, first %s (parent %s: %s)", len(list), list[0].ID, list[0].Parent, list[0].Reason)
}

// openedRepaired is the REPAIRED line of a store that could be opened
// only after a repair: openRepairing returns why it could not first, then
// what it did.
func openedRepaired(opened []string) string {
	return repaired("repository", opened[0], strings.Join(opened[1:], "; "))
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
	found := damage(res.Store.Problems)
	did, err := store.RepairFrom(ctx, sources)
	if did != "" {
		res.Repaired = append(res.Repaired, repaired("objects", found, did))
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
