package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/recovery"
)

// auditFlags is what `nexus audit` was asked.
type auditFlags struct {
	since          time.Time
	verify, asJSON bool
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory whose audit log to read (env NEXUS_DATA); it may be in use by a running node")
	file := fs.String("file", "", "audit log file to read (a node's --audit-file), instead of DATA/audit.log")
	since := fs.String("since", "", "print only the records at or after this time (RFC 3339); the whole chain is verified anyway")
	var af auditFlags
	fs.BoolVar(&af.verify, "verify", false, "only verify the chain and print its head (exit 4 naming the first broken record)")
	fs.BoolVar(&af.asJSON, "json", false, "print the records as JSON lines")
	server := serverFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var err error
	if af.since, err = parseTime("since", *since); err != nil {
		return err
	}
	c, err := adminClient(fs, *server, "file")
	if err != nil {
		return err
	}
	var rc io.ReadCloser
	if c != nil {
		rc, err = c.AuditLog(ctx)
	} else {
		rc, err = openAuditFile(*data, *file)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	return printAudit(rc, af, stdout)
}

// openAuditFile opens the audit log of a data directory, or file.
func openAuditFile(data, file string) (io.ReadCloser, error) {
	if file == "" {
		if err := needStore(data); err != nil {
			return nil, err
		}
		file = node.AuditFile(data)
	}
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("no audit log at %s: a node writes it from its first start with this version on (see --file)", file)
	}
	return f, err
}

// printAudit verifies the log in r, printing its records (unless only
// verifying) and then its head, or fails naming the first broken record.
func printAudit(r io.Reader, af auditFlags, stdout io.Writer) error {
	head, err := audit.Verify(r, func(rec audit.Record) error {
		if af.verify || rec.Time.Before(af.since) {
			return nil
		}
		if af.asJSON {
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintln(stdout, auditLine(rec))
		return err
	})
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		return exitCode{fsckDamaged, fmt.Sprintf("the audit log was tampered with or damaged: %v", ce)}
	}
	if err != nil {
		return err
	}
	if af.asJSON && !af.verify {
		return nil
	}
	fmt.Fprintf(stdout, "chain intact: %d records; head seq %d, hash %s\n", head.Records, head.Seq, head.Hash)
	if head.Torn > 0 {
		fmt.Fprintf(stdout, "an unfinished last record (%d bytes) follows: a write cut short by a crash, never acknowledged; the next append cuts it off\n", head.Torn)
	}
	return nil
}

// auditLine is one record for a person.
func auditLine(r audit.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d %-12s %-9s by %s", r.Time.UTC().Format(time.RFC3339), r.Seq, r.Kind, r.Action, r.Principal)
	if r.Remote != "" {
		fmt.Fprintf(&b, " from %s", r.Remote)
	}
	if r.Route != "" {
		fmt.Fprintf(&b, " (%s)", r.Route)
	}
	if len(r.Params) > 0 {
		fmt.Fprintf(&b, " %s", fields(r.Params))
	}
	if r.Intent != 0 {
		fmt.Fprintf(&b, " [intent #%d]", r.Intent)
	}
	if r.Outcome != "" {
		fmt.Fprintf(&b, ": %s", r.Outcome)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " (%s)", r.Error)
	}
	if len(r.Result) > 0 {
		fmt.Fprintf(&b, " -> %s", fields(r.Result))
	}
	return b.String()
}

func fields(f audit.Fields) string {
	parts := make([]string, 0, len(f))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, f[k]))
	}
	return strings.Join(parts, " ")
}

// auditedOffline runs an admin verb on a data directory (the node
// stopped) as the node would: recorded in its audit log first, and
// refused, changing nothing, when that record cannot be written. The
// records name the operating system user who ran it.
func auditedOffline(ctx context.Context, data, action string, params audit.Fields, fn func() (audit.Fields, error)) error {
	l, err := audit.Open(node.AuditFile(data), audit.Options{})
	if err != nil {
		return exitCode{1, fmt.Sprintf("the audit log cannot be written, so %s was refused and nothing was done: %v", action, err)}
	}
	if params == nil {
		params = audit.Fields{}
	}
	params["os_user"] = osUser()
	ran := false
	err = l.Do(ctx, action, params, func() (audit.Fields, error) { ran = true; return fn() })
	if err != nil && !ran {
		return exitCode{1, describe(err)}
	}
	return err
}

// osUser names the user running this process.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}

// restoreParams and restoreResult are the audit fields of a restore, as
// the node records them.
func restoreParams(at time.Time, dry bool) audit.Fields {
	return audit.Fields{"at": at.UTC().Format(time.RFC3339Nano), "dry_run": strconv.FormatBool(dry)}
}

func restoreResult(p *gitstore.RestorePlan) audit.Fields {
	return audit.Fields{"from": p.From, "to": p.To, "rolled_back": strconv.Itoa(p.RolledBack),
		"kept": strconv.Itoa(p.Kept), "recovery_ref": p.RecoveryRef}
}

// stepFields is the audit result of a recovery: each component's status.
func stepFields(steps []recovery.Step) audit.Fields {
	out := audit.Fields{}
	for _, s := range steps {
		out[s.Component] = string(s.Status)
	}
	return out
}
