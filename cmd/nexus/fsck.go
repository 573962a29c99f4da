package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/secrets"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/recovery"
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
	keys := keyFlags(fs)
	server := serverFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if c, err := adminClient(fs, *server, "backup", "mirror"); c != nil || err != nil {
		if err != nil {
			return err
		}
		return fsckOnline(ctx, c, node.FsckOptions{Deep: *deep, Repair: *repair}, *asJSON, stdout)
	}
	if err := needStore(*data); err != nil {
		return err
	}
	cfg, done, err := offlineConfig(ctx, *data, fixSources(*from, *mirror, *data), keys, stderr)
	if err != nil {
		return err
	}
	var res *fsckResult
	params := audit.Fields{"deep": strconv.FormatBool(*deep), "repair": strconv.FormatBool(*repair)}
	err = auditedOffline(ctx, *data, "fsck", params, func() (audit.Fields, error) {
		if res, err = node.FsckOffline(ctx, cfg, node.FsckOptions{Deep: *deep, Repair: *repair}); err != nil {
			return nil, err
		}
		return audit.Fields{"problems": strconv.Itoa(len(res.Store.Problems)), "repaired": strconv.Itoa(len(res.Repaired))}, nil
	})
	done()
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("fsck", err)
	}
	if err != nil {
		return exitCode{fsckDamaged, fmt.Sprintf("the store cannot be opened: %s\n"+
			"The git repository itself is damaged: restore it from a backup (`nexus backup list`), "+
			"or inspect it with `git --git-dir %s fsck --full`.", describe(err), filepath.Join(*data, "repo.git"))}
	}
	return finishFsck(stdout, res, *asJSON)
}

// finishFsck prints the result and returns its exit code.
func finishFsck(stdout io.Writer, res *fsckResult, asJSON bool) error {
	if res.Status == "" {
		switch {
		case !res.Store.Clean():
			res.Status = node.FsckDamaged
		case len(res.Repaired) > 0:
			res.Status = node.FsckRepaired
		default:
			res.Status = node.FsckClean
		}
	}
	if asJSON {
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
// with the embedder of the environment (none without NEXUS_EMBED_URL: the
// model of the saved index when it is a learned one, else the built-in
// one) and progress on w; done finishes the progress lines.
func offlineConfig(ctx context.Context, data string, sources []string, keys keySource, w io.Writer) (node.OfflineConfig, func(), error) {
	var emb nexus.Embedder
	if os.Getenv("NEXUS_EMBED_URL") != "" {
		var err error
		if emb, err = newEmbedder(ctx); err != nil {
			return node.OfflineConfig{}, nil, err
		}
	}
	ps := &progresses{w: w}
	return node.OfflineConfig{Dir: data, Sources: sources, Embedder: emb, Progress: ps.make, Encrypt: keys.encryption()}, ps.finish, nil
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

// serverFlag adds --server to an admin verb (fsck, restore, recover),
// with the TLS flags of a client.
func serverFlag(fs *flag.FlagSet) *string {
	addClientTLSFlags(fs)
	return fs.String("server", env("NEXUS_SERVER", ""), "URL of a running node to act on through its admin API (token from NEXUS_TOKEN_FILE or NEXUS_TOKEN) "+
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
	tok, err := secrets.TokenFromEnv()
	if err != nil {
		return nil, usageError{err}
	}
	cf := clientFlags{server: server, token: tok, tls: clientTLSOf(fs)}
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
func fsckOnline(ctx context.Context, c *httpapi.Client, opts node.FsckOptions, asJSON bool, stdout io.Writer) error {
	deep, repair := opts.Deep, opts.Repair
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
			index = strings.TrimSpace(string(s.Status) + ": " + s.Reason)
		}
	}
	return index
}
