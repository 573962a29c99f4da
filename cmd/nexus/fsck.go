package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nexus-mem/nexus/node"
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
type fsckResult = node.FsckResult

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
	cfg, done, err := offlineConfig(ctx, *data, fixSources(*from, *mirror, *data), stderr)
	if err != nil {
		return err
	}
	res, err := node.FsckOffline(ctx, cfg, node.FsckOptions{Deep: *deep, Repair: *repair})
	done()
	if err != nil {
		return exitCode{fsckDamaged, fmt.Sprintf("the store cannot be opened: %s\n"+
			"The git repository itself is damaged: restore it from a backup (`nexus backup list`), "+
			"or inspect it with `git --git-dir %s fsck --full`.", describe(err), filepath.Join(*data, "repo.git"))}
	}
	if *asJSON {
		printJSON(stdout, res)
	} else {
		printFsck(stdout, res)
	}
	switch res.Status {
	case node.FsckDamaged:
		return exitCode{fsckDamaged, fmt.Sprintf("%d problems left: the repository is damaged", len(res.Store.Problems))}
	case node.FsckRepaired:
		return exitCode{fsckRepaired, "problems found and repaired"}
	}
	return nil
}

// offlineConfig is a stopped node's data directory for the offline verbs,
// with the embedder of the environment and progress on w; done finishes
// the progress lines.
func offlineConfig(ctx context.Context, data string, sources []string, w io.Writer) (node.OfflineConfig, func(), error) {
	emb, err := newEmbedder(ctx)
	if err != nil {
		return node.OfflineConfig{}, nil, err
	}
	ps := &progresses{w: w}
	return node.OfflineConfig{Dir: data, Sources: sources, Embedder: emb, Progress: ps.make}, ps.finish, nil
}

// fixSources lists where to repair objects from: the backup asked for,
// else the mirror and every bundle in DATA/backups, newest first.
func fixSources(from, mirror, data string) []string {
	if from != "" {
		return []string{from}
	}
	return node.RepairSources(mirror, backupDir(data))()
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
