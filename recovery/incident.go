package recovery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// Incidents are the node's own records, in its memory, of every failure
// the cascade detected and of what was done about it. One incident is a
// thread of contexts in [IncidentsNamespace]:
//
//   - its root, of type incident, written when the failure is detected:
//     the component, the cause, what found it, the node, the time;
//   - one child of type result per outcome: the recovery attempts since
//     the previous outcome (the steps), and the status they left — failed
//     (the node tries again at each cascade; a critical component stops
//     the node), recovered, or cleared (well again with no successful
//     attempt of the node: after a restart, an offline repair, or the
//     fault passed), with what the operator should do.
//
// An incident with no outcome yet is open: detected, still being worked
// on, or its node stopped before it could record one. The record format
// is the metadata key "incident" (see [Detection] and [Outcome]); the
// content of each context says the same for a person and for search.

// IncidentsNamespace holds the incident records: a system namespace
// (authz.IncidentsNamespace), written by the node only.
const IncidentsNamespace = "incidents"

// IncidentAgent is the agent id of the node's incident records.
const IncidentAgent = "nexus-recovery"

// Kinds of incident.
const (
	KindFailure = "failure" // a component found failing (by the cascade, or at start)
	KindRestore = "restore" // a point-in-time restore an operator ran
)

// Incident statuses.
const (
	IncidentOpen      = "open"      // detected; no outcome recorded yet
	IncidentFailed    = "failed"    // the last recorded attempt failed
	IncidentRecovered = "recovered" // the node recovered the component
	IncidentCleared   = "cleared"   // well again with no successful attempt of the node
	IncidentRestored  = "restored"  // a restore that completed
)

// Limits of a record: what the node keeps of a long episode.
const (
	MaxIncidentSteps = 20   // steps per outcome record; the rest are counted
	maxReason        = 2000 // bytes of a step's reason or a cause
)

// IncidentStep is one thing that happened in an incident.
type IncidentStep struct {
	At time.Time `json:"at"`
	// Action is what was done: detect, recover, check (found well
	// again), repair (at start), restore, re-record.
	Action string `json:"action"`
	// Status is its outcome: detected, recovered, failed, ok, done.
	Status string        `json:"status"`
	Reason string        `json:"reason,omitempty"`
	Took   time.Duration `json:"took_ns"`
}

// StepOf is the incident step of a cascade's recovery attempt.
func StepOf(s Step) IncidentStep {
	return IncidentStep{At: s.At, Action: "recover", Status: string(s.Status), Reason: clipReason(s.Reason), Took: s.Took}
}

// Incident is one incident as its records tell it.
type Incident struct {
	ID         nexus.ID  `json:"id"` // its root context
	Kind       string    `json:"kind"`
	Component  string    `json:"component"`
	Cause      string    `json:"cause"`
	FoundBy    string    `json:"found_by"`
	Node       string    `json:"node,omitempty"`
	DetectedAt time.Time `json:"detected_at"`
	Status     string    `json:"status"`
	// ResolvedAt is when it was recovered, cleared or restored.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Duration runs from detection to the resolution, or to the last
	// outcome recorded (0 while open).
	Duration time.Duration `json:"duration_ns"`
	// Attempts counts the recovery attempts, those beyond the steps kept
	// included.
	Attempts int `json:"attempts"`
	// Stopped is set when the node stopped on it (a critical component
	// that could not be recovered), even if it was resolved afterwards.
	Stopped bool           `json:"stopped,omitempty"`
	Steps   []IncidentStep `json:"steps"`
	// Advice is what the operator should do, as the node saw it when it
	// recorded the last outcome.
	Advice string `json:"advice,omitempty"`
	// Updates are the ids of the outcome records, oldest first.
	Updates []nexus.ID `json:"updates"`
	// RecordedFrom is the id of the record this one was written again
	// from, after a restore rolled it back.
	RecordedFrom nexus.ID `json:"recorded_from,omitzero"`
}

// Detection is the record of an incident's detection: its root.
type Detection struct {
	Kind      string    `json:"kind"`
	Component string    `json:"component"`
	Cause     string    `json:"cause"`
	FoundBy   string    `json:"found_by"`
	Node      string    `json:"node,omitempty"`
	At        time.Time `json:"detected_at"`
}

// Outcome is the record of an incident's outcome: a child of its root.
type Outcome struct {
	Status   string         `json:"status"`
	At       time.Time      `json:"at"`
	Attempts int            `json:"attempts"` // so far, in the whole incident
	Stopped  bool           `json:"stopped,omitempty"`
	Steps    []IncidentStep `json:"steps"` // since the previous outcome
	Advice   string         `json:"advice,omitempty"`
}

// record is the metadata of an incident's contexts.
type record struct {
	Record string `json:"record"` // "detection" or "outcome"
	*Detection
	*Outcome
	RecordedFrom nexus.ID `json:"recorded_from,omitzero"`
}

// DetectionDraft is the root context of an incident.
func DetectionDraft(d Detection) nexus.Draft {
	if d.Kind == "" {
		d.Kind = KindFailure
	}
	d.Cause = clipReason(d.Cause)
	d.At = d.At.UTC()
	var b strings.Builder
	switch d.Kind {
	case KindRestore:
		fmt.Fprintf(&b, "Restore: %s.", d.Cause)
	default:
		fmt.Fprintf(&b, "%s failed: %s.", d.Component, d.Cause)
	}
	fmt.Fprintf(&b, " Found by %s at %s", orUnknown(d.FoundBy), d.At.Format(time.RFC3339Nano))
	if d.Node != "" {
		fmt.Fprintf(&b, " on node %s", d.Node)
	}
	b.WriteString(".")
	return nexus.Draft{Namespace: IncidentsNamespace, Type: nexus.TypeIncident, AgentID: IncidentAgent,
		Content: b.String(), Metadata: mustMeta(record{Record: "detection", Detection: &d})}
}

// OutcomeDraft is an outcome of the incident detected by d, whose root is
// parent (zero: not known yet, set it before writing).
func OutcomeDraft(d Detection, o Outcome, parent nexus.ID) nexus.Draft {
	o.At = o.At.UTC()
	if len(o.Steps) > MaxIncidentSteps {
		o.Steps = o.Steps[len(o.Steps)-MaxIncidentSteps:]
	}
	var b strings.Builder
	after := o.At.Sub(d.At).Round(time.Millisecond)
	switch o.Status {
	case IncidentRecovered:
		fmt.Fprintf(&b, "%s recovered %s after it was detected (%s)", d.Component, after, attempts(o.Attempts))
	case IncidentCleared:
		fmt.Fprintf(&b, "%s found well again %s after it was detected, with no successful recovery by the node (%s)", d.Component, after, attempts(o.Attempts))
	case IncidentRestored:
		fmt.Fprintf(&b, "Restore done in %s", after)
	case IncidentFailed:
		fmt.Fprintf(&b, "%s could not be recovered (%s so far)", d.Component, attempts(o.Attempts))
		if o.Stopped {
			b.WriteString("; the node stops")
		} else {
			b.WriteString("; the node tries again at each cascade")
		}
	default:
		fmt.Fprintf(&b, "%s: %s", d.Component, o.Status)
	}
	if n := len(o.Steps); n > 0 && o.Steps[n-1].Reason != "" {
		fmt.Fprintf(&b, ": %s", o.Steps[n-1].Reason)
	}
	b.WriteString(".")
	if o.Advice != "" {
		fmt.Fprintf(&b, " Operator: %s.", strings.TrimSuffix(o.Advice, "."))
	}
	return nexus.Draft{Namespace: IncidentsNamespace, Type: nexus.TypeResult, AgentID: IncidentAgent, ParentID: parent,
		Content: b.String(), Metadata: mustMeta(record{Record: "outcome", Outcome: &o})}
}

// RecordAgain is a draft that writes c, an incident record a restore
// rolled back, again: the same content and record, marked with c's id,
// under parent (zero: c's own parent).
func RecordAgain(c *nexus.Context, parent nexus.ID) (nexus.Draft, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(c.Metadata, &m); err != nil {
		return nexus.Draft{}, err
	}
	var rec map[string]any
	if err := json.Unmarshal(m["incident"], &rec); err != nil || rec == nil {
		return nexus.Draft{}, fmt.Errorf("context %s is not an incident record", c.ID)
	}
	if _, again := rec["recorded_from"]; !again {
		rec["recorded_from"] = c.ID.String()
	}
	meta, err := json.Marshal(map[string]any{"incident": rec})
	if err != nil {
		return nexus.Draft{}, err
	}
	if parent.IsZero() {
		parent = c.ParentID
	}
	return nexus.Draft{Namespace: c.Namespace, Type: c.Type, AgentID: c.AgentID, ParentID: parent, Content: c.Content, Metadata: meta}, nil
}

func mustMeta(r record) json.RawMessage {
	b, err := json.Marshal(map[string]any{"incident": r})
	if err != nil {
		panic(err) // only strings, times and numbers
	}
	return b
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed check"
	}
	return s
}

func clipReason(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut-- // not inside a UTF-8 sequence
	}
	return s[:cut] + "…"
}

// parseRecord reads the incident record of c, or ok false.
func parseRecord(c *nexus.Context) (record, bool) {
	var m struct {
		Incident json.RawMessage `json:"incident"`
	}
	if c.Namespace != IncidentsNamespace || json.Unmarshal(c.Metadata, &m) != nil || m.Incident == nil {
		return record{}, false
	}
	var r record
	switch {
	case c.Type == nexus.TypeIncident:
		r.Detection = &Detection{}
	case c.Type == nexus.TypeResult:
		r.Outcome = &Outcome{}
	default:
		return record{}, false
	}
	if json.Unmarshal(m.Incident, &r) != nil {
		return record{}, false
	}
	want := map[bool]string{true: "detection", false: "outcome"}[r.Detection != nil]
	return r, r.Record == want
}

// ParseIncident reads an incident from its root and its children (in any
// order; those that are not outcome records are ignored).
func ParseIncident(root *nexus.Context, children []*nexus.Context) (*Incident, error) {
	r, ok := parseRecord(root)
	if !ok || r.Detection == nil {
		return nil, nexus.Errorf(nexus.ENotFound, "context %s is not an incident", root.ID)
	}
	d := r.Detection
	inc := &Incident{ID: root.ID, Kind: d.Kind, Component: d.Component, Cause: d.Cause, FoundBy: d.FoundBy, Node: d.Node,
		DetectedAt: d.At, Status: IncidentOpen, RecordedFrom: r.RecordedFrom, Updates: []nexus.ID{},
		Steps: []IncidentStep{{At: d.At, Action: "detect", Status: "detected", Reason: d.Cause}}}
	kids := slices.Clone(children)
	slices.SortFunc(kids, func(a, b *nexus.Context) int { return a.ID.Compare(b.ID) })
	for _, k := range kids {
		or, ok := parseRecord(k)
		if !ok || or.Outcome == nil || k.ParentID != root.ID {
			continue
		}
		o := or.Outcome
		inc.Updates = append(inc.Updates, k.ID)
		inc.Steps = append(inc.Steps, o.Steps...)
		inc.Status, inc.Attempts, inc.Advice = o.Status, o.Attempts, o.Advice
		inc.Stopped = inc.Stopped || o.Stopped
		inc.Duration = o.At.Sub(d.At)
		inc.ResolvedAt = time.Time{}
		if o.Status != IncidentFailed {
			inc.ResolvedAt = o.At
		}
	}
	return inc, nil
}

// Resolved reports whether the incident is over: recovered, cleared or
// restored.
func (i *Incident) Resolved() bool { return !i.ResolvedAt.IsZero() }

// GetIncident reads the incident whose root is id from st: ENotFound if
// there is none (or the caller of ctx may not read it).
func GetIncident(ctx context.Context, st nexus.Store, id nexus.ID) (*Incident, error) {
	root, err := st.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, ok := parseRecord(root); !ok || root.Type != nexus.TypeIncident {
		return nil, nexus.Errorf(nexus.ENotFound, "context %s is not an incident", id)
	}
	kids, err := st.Children(ctx, id)
	if err != nil {
		return nil, err
	}
	return ParseIncident(root, kids)
}

// IncidentQuery selects incidents, newest first.
type IncidentQuery struct {
	Component string    // "": every component
	Since     time.Time // detected at or after (zero: any time)
	Limit     int       // 0: nexus.DefaultLimit; at most nexus.MaxLimit
	Cursor    string    // NextCursor of the previous page
}

// IncidentPage is one page of incidents, newest first. A page may come
// back short, even empty, with a NextCursor to go on (a listing scans a
// bounded number of records per call).
type IncidentPage struct {
	Incidents  []*Incident `json:"incidents"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// maxScan bounds the records one listing call reads.
const maxScan = 5000

// Validate checks the query and fills defaults.
func (q *IncidentQuery) Validate() error {
	if q.Component != "" && !validComponent(q.Component) {
		c := q.Component
		if len(c) > 80 {
			c = c[:80]
		}
		return nexus.Errorf(nexus.EInvalid, "invalid component %q: want 1-64 of a-z 0-9 _ (git_repository, context_manager, memory_cache, semantic_index, agents)", c)
	}
	f := nexus.Filter{Limit: q.Limit, Cursor: q.Cursor}
	if err := f.Validate(); err != nil {
		return err
	}
	q.Limit = f.Limit
	return nil
}

func validComponent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// ListIncidents lists the incidents of st matching q, newest first.
func ListIncidents(ctx context.Context, st nexus.Store, q IncidentQuery) (*IncidentPage, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	out := &IncidentPage{Incidents: []*Incident{}}
	// The store's since is on the record's time, never before the
	// detection: a superset, narrowed below on detected_at.
	f := nexus.Filter{Namespace: IncidentsNamespace, Type: nexus.TypeIncident, Since: q.Since, Limit: max(q.Limit, 100), Cursor: q.Cursor}
	scanned := 0
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for i, c := range page.Contexts {
			scanned++
			r, ok := parseRecord(c)
			if !ok || r.Detection == nil || (q.Component != "" && r.Component != q.Component) || r.Detection.At.Before(q.Since) {
				continue
			}
			kids, err := st.Children(ctx, c.ID)
			if err != nil {
				return nil, err
			}
			inc, err := ParseIncident(c, kids)
			if err != nil {
				return nil, err
			}
			out.Incidents = append(out.Incidents, inc)
			if len(out.Incidents) == q.Limit {
				if i < len(page.Contexts)-1 || page.NextCursor != "" {
					out.NextCursor = c.ID.String()
				}
				return out, nil
			}
		}
		if page.NextCursor == "" {
			return out, nil
		}
		f.Cursor = page.NextCursor
		if scanned >= maxScan {
			out.NextCursor = f.Cursor
			return out, nil
		}
	}
}

// Recent reads the newest records of st (at most limit contexts of the
// incidents namespace) and returns the incidents whose root is among
// them, newest first: one listing, for figures computed often (metrics).
func Recent(ctx context.Context, st nexus.Store, limit int) ([]*Incident, error) {
	page, err := st.List(ctx, nexus.Filter{Namespace: IncidentsNamespace, Limit: limit})
	if err != nil {
		return nil, err
	}
	kids := map[nexus.ID][]*nexus.Context{}
	for _, c := range page.Contexts {
		if !c.ParentID.IsZero() && c.Type == nexus.TypeResult {
			kids[c.ParentID] = append(kids[c.ParentID], c)
		}
	}
	var out []*Incident
	for _, c := range page.Contexts {
		if c.Type != nexus.TypeIncident {
			continue
		}
		if inc, err := ParseIncident(c, kids[c.ID]); err == nil {
			out = append(out, inc)
		}
	}
	return out, nil
}

// PostMortem is an incident told for the operator.
type PostMortem struct {
	Summary     string   `json:"summary"`
	WhatFailed  string   `json:"what_failed"`
	HowFound    string   `json:"how_found"`
	WhatWasDone []string `json:"what_was_done"`
	Outcome     string   `json:"outcome"`
	// TimeToRecovery is from detection to recovery (or to being found
	// well again, or to the end of a restore); absent while unresolved.
	TimeToRecovery *time.Duration `json:"time_to_recovery_ns,omitempty"`
	OperatorAction string         `json:"operator_action"`
}

// componentNames says what each component of the cascade is.
var componentNames = map[string]string{
	nexus.ComponentGit:    "the git repository (the memory's history and objects)",
	nexus.ComponentStore:  "the context manager (the catalog of contexts over git)",
	nexus.ComponentCache:  "the L1 cache of decoded contexts",
	nexus.ComponentIndex:  "the search index (its saved files and its state in memory)",
	nexus.ComponentAgents: "the agents (the node's own, their pools and supervised processes)",
}

// PostMortem tells what failed, how it was found, what was done, the
// time to recovery and what the operator should do.
func (i *Incident) PostMortem() PostMortem {
	pm := PostMortem{WhatWasDone: []string{}}
	what := componentNames[i.Component]
	if what == "" {
		what = i.Component
	} else {
		what = fmt.Sprintf("%s: %s", i.Component, what)
	}
	if i.Kind == KindRestore {
		pm.WhatFailed = fmt.Sprintf("nothing failed by itself: an operator restored the memory (%s)", i.Cause)
	} else {
		pm.WhatFailed = fmt.Sprintf("%s — %s", what, i.Cause)
	}
	pm.HowFound = fmt.Sprintf("%s, at %s", orUnknown(i.FoundBy), i.DetectedAt.Format(time.RFC3339Nano))
	if i.Node != "" {
		pm.HowFound += " on node " + i.Node
	}
	for _, s := range i.Steps[1:] {
		line := fmt.Sprintf("%s %s: %s", s.At.Format(time.RFC3339Nano), s.Action, s.Status)
		if s.Took > 0 {
			line += fmt.Sprintf(" in %s", s.Took.Round(time.Microsecond))
		}
		if s.Reason != "" {
			line += " — " + s.Reason
		}
		pm.WhatWasDone = append(pm.WhatWasDone, line)
	}
	if beyond := i.Attempts - countRecover(i.Steps); beyond > 0 {
		pm.WhatWasDone = append(pm.WhatWasDone, fmt.Sprintf("%d more attempts like these, not kept one by one", beyond))
	}
	switch i.Status {
	case IncidentRecovered, IncidentCleared, IncidentRestored:
		d := i.Duration
		pm.TimeToRecovery = &d
	}
	switch i.Status {
	case IncidentRecovered:
		pm.Outcome = fmt.Sprintf("recovered by the node %s after detection (%s)", i.Duration.Round(time.Millisecond), attempts(i.Attempts))
	case IncidentCleared:
		pm.Outcome = fmt.Sprintf("found well again %s after detection with no successful recovery by the node (%s): a restart, an offline repair or the fault passing cleared it", i.Duration.Round(time.Millisecond), attempts(i.Attempts))
		if i.Stopped {
			pm.Outcome += "; the node had stopped on it"
		}
	case IncidentRestored:
		pm.Outcome = fmt.Sprintf("restore done in %s", i.Duration.Round(time.Millisecond))
	case IncidentFailed:
		if i.Stopped {
			pm.Outcome = fmt.Sprintf("not recovered (%s): the component is critical, so the node stopped", attempts(i.Attempts))
		} else {
			pm.Outcome = fmt.Sprintf("not recovered yet (%s, the last %s after detection): the node tries again at each cascade", attempts(i.Attempts), i.Duration.Round(time.Millisecond))
		}
	default:
		pm.Outcome = "open: detected, and no outcome recorded yet — the node is working on it, or it stopped before it could record one"
	}
	pm.OperatorAction = i.Advice
	if pm.OperatorAction == "" {
		pm.OperatorAction = "see the component in GET /health (nexus recover --server URL runs the cascade now); if the node stopped, `nexus recover --data DIR` on its data directory says what is wrong and repairs what it can"
	}
	pm.Summary = fmt.Sprintf("%s: %s. Found by %s.", i.Component, pm.Outcome, pm.HowFound)
	if i.Kind == KindRestore {
		pm.Summary = fmt.Sprintf("restore (%s): %s.", i.Cause, pm.Outcome)
	}
	return pm
}

func countRecover(steps []IncidentStep) int {
	n := 0
	for _, s := range steps {
		if s.Action == "recover" {
			n++
		}
	}
	return n
}
