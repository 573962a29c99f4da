package gitstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// MustOpen opens a store in a temp dir and closes it at the end of the test.
func MustOpen(tb testing.TB, dir string, opts gitstore.Options) *gitstore.Store {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	s, err := gitstore.Open(dir, opts)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func mustPut(tb testing.TB, s nexus.Store, d nexus.Draft) *nexus.Context {
	tb.Helper()
	c, err := s.Put(context.Background(), d)
	if err != nil {
		tb.Fatalf("put: %v", err)
	}
	return c
}

// git runs the git CLI against the store's repository.
func git(tb testing.TB, gitDir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestStore_GitCLI(t *testing.T) {
	s := MustOpen(t, "", gitstore.Options{})
	root := mustPut(t, s, nexus.Draft{Type: nexus.TypeInstruction, Content: "Fix the login bug\nmore detail", AgentID: "planner", Metadata: []byte(`{"prio":1}`)})
	var ids []nexus.ID
	ids = append(ids, root.ID)
	for i := 0; i < 40; i++ {
		c := mustPut(t, s, nexus.Draft{Namespace: "proj-a", Type: nexus.TypeObservation, Content: fmt.Sprintf("observation %d", i), AgentID: "worker-1"})
		ids = append(ids, c.ID)
	}
	child := mustPut(t, s, nexus.Draft{Type: nexus.TypeDecision, Content: "use bcrypt", AgentID: "worker-2", ParentID: root.ID})
	ids = append(ids, child.ID)

	// Stock git reads the packs of the running store from here on: no
	// pack merge may retire one under it (seen: "packfile ... index not
	// opened" when a merge finished during git fsck).
	held, release := make(chan struct{}), make(chan struct{})
	go s.HoldMerges(func() error { close(held); <-release; return nil })
	<-held
	defer close(release)
	gd := s.GitDir()
	out := git(t, gd, "fsck", "--full", "--strict")
	if strings.Contains(out, "error") {
		t.Fatalf("fsck: %s", out)
	}
	log := git(t, gd, "log", "--format=%an|%s|%(trailers:key=Context-Id,valueonly)", "main")
	lines := strings.Split(strings.TrimSpace(log), "\n")
	// one entry per context, with its trailer; blank lines separate trailers output
	var got []string
	for _, l := range lines {
		if l != "" {
			got = append(got, l)
		}
	}
	if len(got) != len(ids) {
		t.Fatalf("git log has %d lines for %d contexts:\n%s", len(got), len(ids), log)
	}
	if got[0] != "worker-2|decision: use bcrypt|"+child.ID.String() {
		t.Fatalf("newest log entry = %q", got[0])
	}
	full := git(t, gd, "log", "-1", "--format=%B", "main")
	for _, want := range []string{"Context-Id: " + child.ID.String(), "Type: decision", "Namespace: default", "Parent: " + root.ID.String(), "Semantic-Hash: " + child.SemanticHash} {
		if !strings.Contains(full, want) {
			t.Errorf("commit message lacks %q:\n%s", want, full)
		}
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", gd, clone).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v %s", err, out)
	}
	n := 0
	filepath.Walk(clone, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".json") {
			n++
		}
		return nil
	})
	if n != len(ids) {
		t.Fatalf("clone has %d context files, want %d", n, len(ids))
	}
	b, err := os.ReadFile(filepath.Join(clone, "default", "0", "0", "0", "0", "0", root.ID.String()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"content":"Fix the login bug\nmore detail"`) {
		t.Fatalf("file content: %s", b)
	}
}

func TestStore_Reopen(t *testing.T) {
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("w%d-%d", w, i)})
			}
		}()
	}
	wg.Wait()
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, damage := range []string{"none", "missing", "truncated", "bitflip"} {
		t.Run(damage, func(t *testing.T) {
			p := filepath.Join(dir, "catalog.bin")
			switch damage {
			case "missing":
				os.Remove(p)
			case "truncated":
				b, _ := os.ReadFile(p)
				os.WriteFile(p, b[:len(b)/2], 0o644)
			case "bitflip":
				b, _ := os.ReadFile(p)
				b[len(b)/3] ^= 0x10
				os.WriteFile(p, b, 0o644)
			}
			s, err := gitstore.Open(dir, gitstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Head() != head || s.Len() != 400 {
				t.Fatalf("head %s len %d, want %s 400", s.Head(), s.Len(), head)
			}
			if err := s.VerifyCatalog(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStore_Lock(t *testing.T) {
	dir := t.TempDir()
	MustOpen(t, dir, gitstore.Options{})
	_, err := gitstore.Open(dir, gitstore.Options{})
	if nexus.ErrorCode(err) != nexus.EConflict || !errors.Is(err, gitstore.ErrInUse) || !strings.Contains(err.Error(), "in use by process") {
		t.Fatalf("second open: %v", err)
	}
}

func TestStore_Failpoints(t *testing.T) {
	for _, point := range []string{"pack-written", "ref-moved", "catalog-updated"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			var armed sync.Mutex
			fire := false
			s := MustOpen(t, dir, gitstore.Options{Failpoint: func(p string) error {
				armed.Lock()
				defer armed.Unlock()
				if p == point && fire {
					fire = false
					return errors.New("injected")
				}
				return nil
			}})
			a := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "before"})
			armed.Lock()
			fire = true
			armed.Unlock()
			_, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "during"})
			if err == nil {
				t.Fatal("write at failpoint was acknowledged")
			}
			b := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after"})
			if b.Timestamp.Compare(a.Timestamp) <= 0 {
				t.Fatal("timestamps not increasing")
			}
			s.Close()
			s2 := MustOpen(t, dir, gitstore.Options{})
			want := 2
			if point != "pack-written" {
				want = 3 // the ref moved: the write is durable, its outcome was reported as unknown
			}
			if s2.Len() != want {
				t.Fatalf("len %d, want %d", s2.Len(), want)
			}
			if err := s2.VerifyCatalog(); err != nil {
				t.Fatal(err)
			}
			git(t, s2.GitDir(), "fsck", "--full")
		})
	}
}

func TestStore_Apply_Deterministic(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var gen nexus.IDGenerator
	var batches [][]*nexus.Context
	var prev nexus.ID
	for b := 0; b < 5; b++ {
		var batch []*nexus.Context
		for i := 0; i < 20; i++ {
			ts := base.Add(time.Duration(b*100+i) * time.Millisecond)
			meta := []byte(fmt.Sprintf(`{"i":%d}`, i))
			c := &nexus.Context{ID: gen.New(ts), Namespace: []string{"a", "b"}[i%2], Type: nexus.TypeResult, AgentID: "agent",
				Timestamp: ts, Metadata: meta, Content: fmt.Sprintf("result %d/%d", b, i)}
			if i%2 == 0 && !prev.IsZero() {
				c.ParentID = prev
			}
			c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
			if c.Namespace == "a" {
				prev = c.ID
			}
			batch = append(batch, c)
		}
		batches = append(batches, batch)
	}
	var heads []string
	var packs []map[string]bool
	for run := 0; run < 2; run++ {
		s := MustOpen(t, "", gitstore.Options{})
		var h gitstore.Hash
		for _, b := range batches {
			var err error
			if h, err = s.Apply(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		heads = append(heads, h.String())
		names, _ := filepath.Glob(filepath.Join(s.GitDir(), "objects", "pack", "*.pack"))
		set := map[string]bool{}
		for _, n := range names {
			set[filepath.Base(n)] = true
		}
		packs = append(packs, set)
		git(t, s.GitDir(), "fsck", "--full", "--strict")
	}
	if heads[0] != heads[1] {
		t.Fatalf("heads differ: %v", heads)
	}
	if fmt.Sprint(packs[0]) != fmt.Sprint(packs[1]) {
		t.Fatalf("pack files differ (their names are their checksums): %v vs %v", packs[0], packs[1])
	}
}

// The admission check runs before a new context is written: an error
// from it is the Put's, and nothing is written; Apply does not ask it.
func TestStore_Admission(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, t.TempDir(), gitstore.Options{})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "before"})
	head, n := s.Head(), s.Len()
	asked := 0
	s.SetAdmission(func(context.Context) error {
		asked++
		return nexus.Errorf(nexus.EUnavailable, "held back")
	})
	if c, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "refused"}); c != nil || nexus.ErrorMessage(err) != "held back" {
		t.Fatalf("Put with the check refusing: %v, %v", c, err)
	}
	if _, _, err := s.PutRaw(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "refused"}); nexus.ErrorMessage(err) != "held back" {
		t.Fatalf("PutRaw with the check refusing: %v", err)
	}
	if _, err := s.Put(ctx, nexus.Draft{Type: "no such type", Content: "bad"}); nexus.ErrorCode(err) != nexus.EInvalid || asked != 2 {
		t.Fatalf("an invalid draft: %v, the check asked %d times (want 2: bad input is refused first)", err, asked)
	}
	if s.Head() != head || s.Len() != n {
		t.Fatalf("a refused write moved the store: head %s, %d contexts", s.Head(), s.Len())
	}
	s.SetAdmission(nil)
	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after"})
	if s.Len() != n+1 {
		t.Fatalf("%d contexts, want %d", s.Len(), n+1)
	}
}
