package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
)

// runIncidents lists the node's incidents (`nexus incidents [list]`) or
// prints one with its post-mortem (`nexus incidents show ID`).
func runIncidents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "show" {
		return runIncidentsShow(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "list" {
		args = args[1:]
	}
	fs, cf := newClientFlagSet("incidents", stderr)
	var q recovery.IncidentQuery
	fs.StringVar(&q.Component, "component", "", "only the incidents of this component (git_repository, context_manager, memory_cache, semantic_index, agents)")
	since := fs.String("since", "", "only the incidents detected at or after this time (RFC 3339)")
	fs.IntVar(&q.Limit, "limit", 20, "incidents to print, newest first")
	fs.StringVar(&q.Cursor, "cursor", "", "go on from the cursor a previous page gave")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus incidents [list] [--component C] [--since T] [--limit N] [--cursor C]   the node's incidents, newest first\n"+
			"       nexus incidents show ID                                                        one incident, its timeline and post-mortem")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (nexus incidents show ID prints one incident)", fs.Arg(0))
	}
	var err error
	if q.Since, err = parseTime("since", *since); err != nil {
		return err
	}
	page, err := cf.client().Incidents(ctx, q)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, page)
	}
	if len(page.Incidents) == 0 {
		fmt.Fprintln(stdout, "No incidents.")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INCIDENT\tDETECTED\tCOMPONENT\tSTATUS\tTIME TO RECOVERY\tATTEMPTS\tCAUSE")
		for _, i := range page.Incidents {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", i.ID, i.DetectedAt.Local().Format("2006-01-02 15:04:05"), i.Component,
				incidentStatus(i), timeToRecovery(i), i.Attempts, clipText(i.Cause, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "-- more: --cursor %s\n", page.NextCursor)
	}
	return nil
}

func runIncidentsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("incidents show", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus incidents show ID   one incident, its timeline and post-mortem")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one incident id (nexus incidents lists them)")
	}
	id, err := nexus.ParseID(fs.Arg(0))
	if err != nil {
		return usagef("%s", nexus.ErrorMessage(err))
	}
	a, err := cf.client().Incident(ctx, id)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, a)
	}
	printIncident(stdout, a)
	return nil
}

// printIncident prints an incident and its post-mortem for a person.
func printIncident(w io.Writer, a *httpapi.IncidentAnswer) {
	i, pm := a.Incident, a.PostMortem
	fmt.Fprintf(w, "incident:  %s (%s)\ncomponent: %s\nstatus:    %s\ndetected:  %s\n", i.ID, i.Kind, i.Component, incidentStatus(i), i.DetectedAt.Format(time.RFC3339Nano))
	if i.Node != "" {
		fmt.Fprintf(w, "node:      %s\n", i.Node)
	}
	if i.Resolved() {
		fmt.Fprintf(w, "resolved:  %s (after %s)\n", i.ResolvedAt.Format(time.RFC3339Nano), i.Duration.Round(time.Millisecond))
	}
	if !i.RecordedFrom.IsZero() {
		fmt.Fprintf(w, "recorded again after a restore, from %s\n", i.RecordedFrom)
	}
	fmt.Fprintln(w, "\ntimeline:")
	for _, s := range i.Steps {
		fmt.Fprintf(w, "  %s  %-9s %-9s", s.At.Local().Format("2006-01-02 15:04:05.000"), s.Action, s.Status)
		if s.Took > 0 {
			fmt.Fprintf(w, " %s", s.Took.Round(time.Microsecond))
		}
		if s.Reason != "" {
			fmt.Fprintf(w, "  %s", s.Reason)
		}
		fmt.Fprintln(w)
	}
	field := func(name, v string) { fmt.Fprintf(w, "  %-18s%s\n", name+":", v) }
	fmt.Fprintln(w, "\npost-mortem:")
	field("summary", pm.Summary)
	field("what failed", pm.WhatFailed)
	field("how found", pm.HowFound)
	field("what was done", "")
	if len(pm.WhatWasDone) == 0 {
		fmt.Fprintln(w, "    nothing yet")
	}
	for _, d := range pm.WhatWasDone {
		fmt.Fprintf(w, "    - %s\n", d)
	}
	field("outcome", pm.Outcome)
	if pm.TimeToRecovery != nil {
		field("time to recovery", pm.TimeToRecovery.Round(time.Millisecond).String())
	}
	field("operator action", pm.OperatorAction)
}

func incidentStatus(i *recovery.Incident) string {
	if i.Stopped {
		return i.Status + " (node stopped)"
	}
	return i.Status
}

func timeToRecovery(i *recovery.Incident) string {
	if !i.Resolved() {
		return "-"
	}
	return strings.TrimSpace(i.Duration.Round(time.Millisecond).String())
}
