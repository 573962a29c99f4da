package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// A failed scenario exits 1 and wins over a missed objective, which exits
// 3; each is named with its reason.
func TestDrillVerdict(t *testing.T) {
	met := drillResult{Scenario: "process_restart", Met: true, Max: 0.2, Objective: "5s"}
	missed := drillResult{Scenario: "leader_failover", Max: 7.25, Objective: "5s"}
	failed := drillResult{Scenario: "object_repair", Error: "git fsck after the repair: exit status 1\nerror: ..."}
	for _, c := range []struct {
		results []drillResult
		code    int
		msg     string
	}{
		{[]drillResult{met}, 0, ""},
		{[]drillResult{met, missed}, drillMissed, "objective missed: leader_failover (max 7.25 s, objective 5s)"},
		{[]drillResult{missed, failed, met}, drillFailed, "1 scenario(s) failed: object_repair: git fsck after the repair: exit status 1"},
	} {
		err := drillVerdict(c.results)
		var ec exitCode
		switch {
		case c.code == 0 && err != nil:
			t.Errorf("%v: %v, want nil", c.results, err)
		case c.code != 0 && (!errors.As(err, &ec) || ec.code != c.code || ec.msg != c.msg):
			t.Errorf("%v: %#v, want exit %d with %q", c.results, err, c.code, c.msg)
		}
	}
}

// The data check names what is missing, changed or unexpected.
func TestSameContents(t *testing.T) {
	var gen nexus.IDGenerator
	now := time.Now()
	a, b, c := gen.New(now), gen.New(now), gen.New(now)
	want := map[nexus.ID]string{a: "x", b: "y"}
	if err := sameContents(map[nexus.ID]string{a: "x", b: "y"}, want); err != nil {
		t.Fatal(err)
	}
	err := sameContents(map[nexus.ID]string{a: "z", c: "w"}, want)
	if err == nil || !strings.Contains(err.Error(), "of 2 contexts, 1 missing, 1 changed, 1 unexpected") {
		t.Errorf("%v, want 1 missing, 1 changed, 1 unexpected", err)
	}
}
