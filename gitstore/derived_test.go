package gitstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

func TestProblemKind_Derived(t *testing.T) {
	cases := []struct {
		kind            gitstore.ProblemKind
		derived, damage bool
	}{
		{gitstore.ProblemPack, false, true},
		{gitstore.ProblemObject, false, true},
		{gitstore.ProblemRef, false, true},
		{gitstore.ProblemReachability, false, true},
		{gitstore.ProblemContext, false, true},
		{gitstore.ProblemChain, false, false},
		{gitstore.ProblemCatalog, true, false},
		{gitstore.ProblemCache, true, false},
		{gitstore.ProblemRepair, false, false},
	}
	for _, tc := range cases {
		if tc.kind.Derived() != tc.derived || tc.kind.Damage() != tc.damage {
			t.Errorf("%s: derived %v damage %v, want %v %v", tc.kind, tc.kind.Derived(), tc.kind.Damage(), tc.derived, tc.damage)
		}
	}
	// The JSON text of a report is the kind's name, as before it was typed.
	b, err := json.Marshal(gitstore.Problem{Kind: gitstore.ProblemCatalog, Message: "m"})
	if err != nil || string(b) != `{"kind":"catalog","message":"m"}` {
		t.Fatalf("json: %s %v", b, err)
	}
}

// damageCatalog rewrites the saved catalog of a closed store so that one
// context's agent reads "agent-owt" instead of "agent-two", with a valid
// checksum: the store opens it as sound, and only a comparison with git
// finds it wrong. The file format is "NXCAT1\n" ... sha256[32].
func damageCatalog(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "catalog.bin")
	b := mustRead(t, p)
	body := b[:len(b)-32]
	i := bytes.Index(body, []byte("agent-two"))
	if i < 0 {
		t.Fatal("the catalog holds no agent-two: the damage cannot be set up")
	}
	copy(body[i:], "agent-owt")
	sum := sha256.Sum256(body)
	if err := os.WriteFile(p, append(body, sum[:]...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// noOrphanRef fails when refs/nexus/orphans exists.
func noOrphanRef(t *testing.T, gitDir string) {
	t.Helper()
	if out := git(t, gitDir, "for-each-ref", "refs/nexus/orphans"); out != "" {
		t.Fatalf("refs/nexus/orphans written: %s", out)
	}
}

// A catalog that disagrees with git is rebuilt from git: the result is
// byte for byte the catalog a store without one builds at open.
func TestStore_RepairDerived_Catalog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{})
	for i := range 10 {
		mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("context %d", i), AgentID: []string{"agent-one", "agent-two"}[i%2]})
	}
	s.Close()
	fresh := copyDir(t, dir)
	if err := os.Remove(filepath.Join(fresh, "catalog.bin")); err != nil {
		t.Fatal(err)
	}
	damageCatalog(t, dir)

	s = MustOpen(t, dir, gitstore.Options{})
	if page, _ := s.List(ctx, nexus.Filter{AgentID: "agent-two"}); len(page.Contexts) != 4 {
		t.Fatalf("the damaged catalog lists %d contexts of agent-two, want 4 (damage not set up)", len(page.Contexts))
	}
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != gitstore.ProblemCatalog {
		t.Fatalf("deep check: %+v", rep.Problems)
	}
	got, err := s.RepairDerived(ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []gitstore.Repair{{Kind: gitstore.ProblemCatalog,
		Damage: "catalog disagreed with git (" + rep.Problems[0].Message + ")",
		Action: "rebuilt from git (10 contexts)"}}
	if !reflect.DeepEqual(got.Repaired, want) || !got.Clean() || got.Orphans != nil {
		t.Fatalf("repair: %+v", got)
	}
	if page, _ := s.List(ctx, nexus.Filter{AgentID: "agent-two"}); len(page.Contexts) != 5 {
		t.Fatalf("after the repair %d contexts of agent-two, want 5", len(page.Contexts))
	}
	if rep, err := s.Fsck(ctx, true); err != nil || !rep.Clean() {
		t.Fatalf("deep check after the repair: %v %+v", err, rep)
	}
	s.Close()
	MustOpen(t, fresh, gitstore.Options{}).Close() // builds and saves its catalog from git
	if !bytes.Equal(mustRead(t, filepath.Join(dir, "catalog.bin")), mustRead(t, filepath.Join(fresh, "catalog.bin"))) {
		t.Fatal("the repaired catalog differs from one rebuilt from scratch")
	}
	noOrphanRef(t, filepath.Join(dir, "repo.git"))
}

// Orphans are marked on refs/nexus/orphans, once; their chains are not
// relinked and stay reported.
func TestStore_RepairDerived_Orphans(t *testing.T) {
	ctx := context.Background()
	dir, parent := orphanStore(t)
	gitDir := filepath.Join(dir, "repo.git")
	before := git(t, gitDir, "ls-tree", "-r", "main")
	s := MustOpen(t, dir, gitstore.Options{})
	head := s.Head()
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 3 {
		t.Fatalf("deep check: %+v", rep.Problems)
	}
	got, err := s.RepairDerived(ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []gitstore.Repair{{Kind: gitstore.ProblemChain,
		Damage: "3 orphaned contexts (parent missing), 0 marked on refs/nexus/orphans",
		Action: "marked the 3 on refs/nexus/orphans, never relinked"}}
	if !reflect.DeepEqual(got.Repaired, want) || !reflect.DeepEqual(got.Left, rep.Problems) || len(got.Orphans) != 3 {
		t.Fatalf("repair: %+v", got)
	}
	for _, o := range got.Orphans {
		if o.Parent != parent {
			t.Fatalf("orphan %+v: parent is not %s", o, parent)
		}
	}
	// Marked once: a second repair finds the mark up to date.
	rep2, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.RepairDerived(ctx, rep2)
	if err != nil || len(again.Repaired) != 0 || !reflect.DeepEqual(again.Left, rep.Problems) || len(again.Orphans) != 3 {
		t.Fatalf("second repair: %v %+v", err, again)
	}
	if s.Head() != head {
		t.Fatalf("main moved from %s to %s", head, s.Head())
	}
	s.Close()
	if after := git(t, gitDir, "ls-tree", "-r", "main"); after != before {
		t.Fatalf("main's tree changed:\n%s\nwas\n%s", after, before)
	}
	if n := strings.Count(git(t, gitDir, "log", "--format=%s", "refs/nexus/orphans"), "\n"); n != 1 {
		t.Fatalf("%d commits on refs/nexus/orphans, want 1", n)
	}
	marked := git(t, gitDir, "show", "refs/nexus/orphans:orphans.json")
	for _, o := range got.Orphans {
		if !strings.Contains(marked, o.ID.String()) {
			t.Fatalf("orphans.json lacks %s: %s", o.ID, marked)
		}
	}
}

// Repository damage is not derived: it is left, reported as found, and
// nothing is rebuilt or marked.
func TestStore_RepairDerived_LeavesDamage(t *testing.T) {
	ctx := context.Background()
	dir, _ := damagedStore(t, 20)
	p := packs(t, dir)[5]
	b := mustRead(t, p)
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	catalog := mustRead(t, filepath.Join(dir, "catalog.bin"))
	s := MustOpen(t, dir, gitstore.Options{CacheBytes: 1, MergePacks: 1 << 20})
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() {
		t.Fatal("deep check found nothing: the damage is not set up")
	}
	for _, p := range rep.Problems {
		if !p.Kind.Damage() {
			t.Fatalf("problem %s is not repository damage", p)
		}
	}
	got, err := s.RepairDerived(ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Repaired) != 0 || !reflect.DeepEqual(got.Left, rep.Problems) || len(got.Orphans) != 0 {
		t.Fatalf("repair: %+v", got)
	}
	s.Close()
	if !bytes.Equal(mustRead(t, filepath.Join(dir, "catalog.bin")), catalog) {
		t.Fatal("the catalog was rewritten")
	}
	noOrphanRef(t, filepath.Join(dir, "repo.git"))
}
