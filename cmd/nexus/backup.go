package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
)

// backupDir is where backups go unless --dir says otherwise.
func backupDir(data string) string { return node.BackupDir(data) }

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runBackupList(args[1:], stdout, stderr)
		case "verify":
			return runBackupVerify(ctx, args[1:], stdout, stderr)
		case "restore":
			return runBackupRestore(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	dir := fs.String("dir", "", "backup directory (default DATA/backups)")
	keep := fs.Int("keep", 0, "then delete all but the newest N backups (0: keep all)")
	mirror := fs.String("mirror", "", "push every ref to this bare repository path instead of writing a bundle (created if missing)")
	keys := keyFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus backup [flags]                 write a verified git bundle of the store\n       nexus backup --mirror PATH          push the store to a mirror repository\n       nexus backup list [--dir D]         list backups, newest first\n       nexus backup verify FILE|MIRROR     check a backup\n       nexus backup restore FILE|MIRROR --data D  make D a store from a backup")
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := needStore(*data); err != nil {
		return err
	}
	if *dir == "" {
		*dir = backupDir(*data)
	}
	params := audit.Fields{"dir": *dir}
	if *mirror != "" {
		params = audit.Fields{"mirror": *mirror}
	}
	var report string
	err := auditedOffline(ctx, *data, "backup", params, func() (audit.Fields, error) {
		store, err := gitstore.Open(*data, gitstore.Options{Encrypt: keys.encryption()})
		if err != nil {
			return nil, err
		}
		defer store.Close()
		if *mirror != "" {
			m, err := store.PushMirror(ctx, *mirror)
			if err != nil {
				return nil, err
			}
			report = fmt.Sprintf("%s: main at %s, %d refs, pushed in %s\n", m.Path, m.Head[:12], m.Refs, m.Took.Round(time.Millisecond))
			return audit.Fields{"head": m.Head, "refs": strconv.Itoa(m.Refs)}, nil
		}
		info, err := store.Backup(ctx, *dir)
		if err != nil {
			return nil, err
		}
		report = fmt.Sprintf("%s: main at %s, %d refs, %d bytes, verified\n", info.Path, info.Head[:12], info.Refs, info.Bytes)
		return audit.Fields{"path": info.Path, "head": info.Head, "bytes": strconv.FormatInt(info.Bytes, 10)}, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, report)
	if *mirror != "" {
		return nil
	}
	if *keep > 0 {
		gone, err := gitstore.PruneBackups(*dir, *keep)
		for _, g := range gone {
			fmt.Fprintf(stdout, "deleted %s\n", g)
		}
		return err
	}
	return nil
}

func runBackupList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory whose backups/ to list")
	dir := fs.String("dir", "", "backup directory (default DATA/backups)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	given := *dir != ""
	if !given {
		if err := needStore(*data); err != nil {
			return err
		}
		*dir = backupDir(*data)
	}
	list, err := gitstore.ListBackups(*dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && given:
		return usagef("no backup directory %s", *dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	case len(list) == 0:
		fmt.Fprintf(stderr, "no backups in %s (`nexus backup --data DIR` writes one)\n", *dir)
	}
	for _, b := range list {
		fmt.Fprintf(stdout, "%s  %s  %10d bytes  %s\n", b.Time.Format(time.RFC3339), b.Head, b.Bytes, b.Path)
	}
	return nil
}

func runBackupVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one backup file or mirror repository")
	}
	if st, err := os.Stat(fs.Arg(0)); err == nil && st.IsDir() {
		m, err := gitstore.VerifyMirror(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ok: mirror with main at %s, %d refs, git fsck --full clean\n", m.Head, m.Refs)
		return nil
	}
	info, err := gitstore.VerifyBackup(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ok: main at %s, %d refs, %d bytes\n", info.Head, info.Refs, info.Bytes)
	return nil
}

func runBackupRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "new data directory to create from the backup")
	replace := fs.Bool("replace", false, "the data directory holds a (damaged) store: move it to DATA/quarantine/ first")
	keys := keyFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *data == "" {
		return usagef("want one backup file and --data DIR")
	}
	file := fs.Arg(0)
	if *replace {
		// Check the backup before anything is moved.
		var err error
		if st, serr := os.Stat(file); serr == nil && st.IsDir() {
			_, err = gitstore.VerifyMirror(ctx, file)
		} else {
			_, err = gitstore.VerifyBackup(ctx, file)
		}
		if err != nil {
			return err
		}
		aside, err := gitstore.SetAside(*data)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "the previous store of %s is kept in %s\n", *data, aside)
	}
	info, err := gitstore.RestoreBackup(ctx, file, *data)
	if err != nil {
		return err
	}
	catalog := startProgress(stderr, "catalog")
	store, err := gitstore.Open(*data, gitstore.Options{Progress: catalog.report, Encrypt: keys.encryption()})
	catalog.finish()
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(stdout, "restored %d contexts (main at %s) into %s\n", store.Len(), info.Head[:12], *data)
	return nil
}
