package gitstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// copyDir copies a closed store's directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// Recipe 8: restore to 20 random times; everything acknowledged at or
// before T is present, nothing after; the abandoned head is kept under
// refs/recovery/; stock git accepts the result; writing goes on.
func TestRestoreTo_RandomTimes(t *testing.T) {
	src := t.TempDir()
	s, err := gitstore.Open(src, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var written []*nexus.Context
	for i := range 150 {
		c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "fact " + string(rune('a'+i%26))})
		written = append(written, c)
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	s.Close()
	first, last := written[0].Timestamp, written[len(written)-1].Timestamp
	r := rand.New(rand.NewPCG(8, 8))
	for round := range 20 {
		at := first.Add(time.Duration(r.Int64N(int64(last.Sub(first)))))
		dir := copyDir(t, src)
		st, err := gitstore.Open(dir, gitstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dry, err := st.RestoreTo(context.Background(), at, true)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := st.RestoreTo(context.Background(), at, false)
		if err != nil {
			t.Fatal(err)
		}
		if !dry.DryRun || dry.To != plan.To || dry.Kept != plan.Kept || dry.RolledBack != plan.RolledBack || dry.Kept+dry.RolledBack != len(written) {
			t.Fatalf("round %d: dry run %+v, restore %+v", round, dry, plan)
		}
		for _, c := range written {
			_, err := st.Get(context.Background(), c.ID)
			switch before := !c.Timestamp.After(at); {
			case before && err != nil:
				t.Fatalf("round %d: %s (before %s) lost: %v", round, c.ID, at, err)
			case !before && nexus.ErrorCode(err) != nexus.ENotFound:
				t.Fatalf("round %d: %s (after %s) still readable: %v", round, c.ID, at, err)
			}
		}
		if st.Len() != plan.Kept || st.VerifyCatalog() != nil {
			t.Fatalf("round %d: len %d, plan %+v", round, st.Len(), plan)
		}
		gitDir := st.GitDir()
		if got := strings.TrimSpace(git(t, gitDir, "rev-parse", plan.RecoveryRef)); got != plan.From {
			t.Fatalf("round %d: recovery ref %s at %s, want %s", round, plan.RecoveryRef, got, plan.From)
		}
		if n := strings.Count(git(t, gitDir, "log", "--format=%H", plan.RecoveryRef), "\n"); n != len(written) {
			t.Fatalf("round %d: the recovery ref holds %d commits", round, n)
		}
		c := mustPut(t, st, nexus.Draft{Type: nexus.TypeMemory, Content: "after the restore"})
		if !c.Timestamp.After(last) {
			t.Fatalf("round %d: new context at %s, not after %s", round, c.Timestamp, last)
		}
		st.Close()
		git(t, gitDir, "fsck", "--full", "--strict")
		os.RemoveAll(dir)
	}
}

func TestRestoreTo_Refusals(t *testing.T) {
	s := MustOpen(t, "", gitstore.Options{})
	if _, err := s.RestoreTo(context.Background(), time.Now(), false); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("empty store: %v", err)
	}
	c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "x"})
	if _, err := s.RestoreTo(context.Background(), c.Timestamp.Add(-time.Second), false); err == nil || !strings.Contains(err.Error(), "no context was written") {
		t.Fatalf("before the first context: %v", err)
	}
	plan, err := s.RestoreTo(context.Background(), c.Timestamp, false)
	if err != nil || plan.RolledBack != 0 || plan.To != plan.From || s.Len() != 1 {
		t.Fatalf("restore to now: %v %+v", err, plan)
	}
	if _, err := os.Stat(filepath.Join(s.GitDir(), "refs", "recovery")); !os.IsNotExist(err) {
		t.Fatal("a restore that rolls nothing back made a recovery ref")
	}
}

// OnRestore gets the plan of every restore that moves main, from the
// writer, before the commits that follow; ids keep increasing across it,
// which the event stream relies on.
func TestRestoreTo_OnRestore(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	var plans []gitstore.RestorePlan
	s := MustOpen(t, "", gitstore.Options{
		OnCommit: func() { mu.Lock(); calls = append(calls, "commit"); mu.Unlock() },
		OnRestore: func(p gitstore.RestorePlan) {
			mu.Lock()
			calls, plans = append(calls, "restore"), append(plans, p)
			mu.Unlock()
		},
	})
	var cs []*nexus.Context
	for i := range 8 {
		cs = append(cs, mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)}))
	}
	if _, err := s.RestoreTo(t.Context(), cs[4].Timestamp, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RestoreTo(t.Context(), cs[7].Timestamp, false); err != nil {
		t.Fatal(err)
	}
	plan, err := s.RestoreTo(t.Context(), cs[4].Timestamp, false)
	if err != nil {
		t.Fatal(err)
	}
	after := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after"})
	mu.Lock()
	defer mu.Unlock()
	if len(plans) != 1 || plans[0] != *plan {
		t.Fatalf("OnRestore got %+v, want one call with %+v (dry runs and restores to now move nothing)", plans, plan)
	}
	if plan.LastKept != cs[4].ID || plan.FirstGone != cs[5].ID || plan.LastGone != cs[7].ID || plan.Kept != 5 {
		t.Errorf("plan %+v: want last kept %s, rolled back %s … %s", plan, cs[4].ID, cs[5].ID, cs[7].ID)
	}
	if want := slices.Repeat([]string{"commit"}, 8); !slices.Equal(calls[:8], want) || !slices.Equal(calls[8:], []string{"restore", "commit", "commit"}) {
		t.Errorf("hook calls %v: want 8 commits, then the restore before its OnCommit and the next commit", calls)
	}
	if after.ID.Compare(plan.LastGone) <= 0 {
		t.Errorf("id %s after the restore does not sort after the rolled-back %s", after.ID, plan.LastGone)
	}
}
