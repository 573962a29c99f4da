package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/node"
)

const tokenCmdUsage = `Usage: nexus token create --name N --role R [--read GLOBS] [--write GLOBS] [--file F]
                            add a principal; print its new token (once)
       nexus token list [--file F] [--json]      list the principals (never their tokens)
       nexus token revoke NAME [--file F]        remove a principal
       nexus token hash < TOKEN                  print the SHA-256 of a token, for the config file

The tokens file is --file, else NEXUS_TOKENS_FILE, else DATA/tokens.json
(--data, env NEXUS_DATA). A running server rereads it on SIGHUP.`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, tokenCmdUsage)
		return usagef("name a subcommand: create, list, revoke or hash")
	}
	switch args[0] {
	case "create":
		return runTokenCreate(args[1:], stdout, stderr)
	case "list":
		return runTokenList(args[1:], stdout, stderr)
	case "revoke":
		return runTokenRevoke(args[1:], stdout, stderr)
	case "hash":
		return runTokenHash(args[1:], os.Stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, tokenCmdUsage)
		return nil
	}
	return usagef("unknown subcommand %q: create, list, revoke or hash", args[0])
}

// tokenFlags are the flags that name the tokens file.
func tokenFlags(name string, stderr io.Writer) (*flag.FlagSet, func() string) {
	fs := flag.NewFlagSet("token "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", env("NEXUS_TOKENS_FILE", ""), "tokens file (env NEXUS_TOKENS_FILE; default DATA/tokens.json)")
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory whose tokens.json to use (env NEXUS_DATA)")
	fs.Usage = func() { fmt.Fprintln(stderr, tokenCmdUsage); fs.PrintDefaults() }
	return fs, func() string {
		if *file != "" {
			return *file
		}
		return node.TokensFile(*data)
	}
}

func runTokenCreate(args []string, stdout, stderr io.Writer) error {
	fs, path := tokenFlags("create", stderr)
	name := fs.String("name", "", "the principal's name, recorded on every commit it writes")
	role := fs.String("role", "", "read, write or admin")
	read := fs.String("read", "", "namespace globs it may read, comma-separated (\"*\": all)")
	write := fs.String("write", "", "namespace globs it may write, comma-separated (role write or admin)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	p := nexus.Principal{Name: *name, Role: nexus.Role(*role), Read: globs(*read), Write: globs(*write)}
	if err := auth.ValidatePrincipal(&p); err != nil {
		return usageError{err}
	}
	var tok string
	err := editTokens(path(), func(f *auth.File) (err error) {
		tok, err = f.Create(p, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "principal %s (role %s) stored in %s as a hash; the token above is shown only now.\n"+
		"A running server takes it after SIGHUP (kill -HUP PID) or a restart.\n", p.Name, p.Role, path())
	return nil
}

// globs splits a comma-separated list of globs.
func globs(s string) []string {
	var out []string
	for g := range strings.SplitSeq(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}

func runTokenList(args []string, stdout, stderr io.Writer) error {
	fs, path := tokenFlags("list", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	f, err := auth.LoadFile(path(), false)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]*nexus.Principal, len(f.Principals))
		for i := range f.Principals {
			out[i] = f.Principals[i].Principal()
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tREAD\tWRITE\tCREATED")
	for _, e := range f.Principals {
		created := "-"
		if !e.Created.IsZero() {
			created = e.Created.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Role, list(e.Read), list(e.Write), created)
	}
	return tw.Flush()
}

func list(gs []string) string {
	if len(gs) == 0 {
		return "-"
	}
	return strings.Join(gs, ",")
}

func runTokenRevoke(args []string, stdout, stderr io.Writer) error {
	fs, path := tokenFlags("revoke", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("name the one principal to revoke: nexus token revoke NAME")
	}
	name := fs.Arg(0)
	if err := editTokens(path(), func(f *auth.File) error { return f.Revoke(name) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked %s in %s; a running server refuses its token after SIGHUP (kill -HUP PID) or a restart\n", name, path())
	return nil
}

func runTokenHash(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, auth.MaxTokenLen+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the token from stdin: %w", err)
	}
	tok := strings.TrimRight(line, "\r\n")
	if err := auth.CheckStrength(tok); err != nil {
		return err
	}
	fmt.Fprintln(stdout, auth.HashToken(tok))
	return nil
}

// editTokens changes the tokens file at path (created if missing) under
// an exclusive lock, so that two edits at once do not lose one.
func editTokens(path string, edit func(*auth.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock tokens file: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock tokens file: %w", err)
	}
	f, err := auth.LoadFile(path, true)
	if err != nil {
		return err
	}
	if err := edit(f); err != nil {
		return err
	}
	return f.Save(path)
}
