package gitstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// Side appends are durable git commits on their own ref, walked newest
// first, survive a reopen, and leave main alone.
func TestStore_SideRef(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "journal entry"})
	head, n := s.Head(), s.Len()
	ctx := context.Background()
	for i := range 3 {
		files := map[string][]byte{"vectors.bin": fmt.Appendf(nil, "segment %d", i), "meta": []byte("m")}
		if _, err := s.AppendSide(ctx, "embeddings/model-a", files, fmt.Sprintf("segment %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Head() != head || s.Len() != n {
		t.Fatal("a side append moved main")
	}
	walk := func(st *gitstore.Store) []string {
		var got []string
		err := st.WalkSide(ctx, "embeddings/model-a", func(files map[string][]byte) error {
			got = append(got, string(files["vectors.bin"]))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := []string{"segment 2", "segment 1", "segment 0"}
	if got := walk(s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("walk: %q", got)
	}
	if got := walk(s); len(got) != 3 {
		t.Fatal(got)
	}
	var none int
	if err := s.WalkSide(ctx, "embeddings/other", func(map[string][]byte) error { none++; return nil }); err != nil || none != 0 {
		t.Fatalf("missing side ref: %d appends, %v", none, err)
	}
	log := git(t, s.GitDir(), "log", "--format=%s", "refs/nexus/embeddings/model-a")
	if log != "segment 2\nsegment 1\nsegment 0\n" {
		t.Fatalf("git log of the side ref:\n%s", log)
	}
	git(t, s.GitDir(), "fsck", "--full", "--strict")
	s.Close()
	s2 := MustOpen(t, dir, gitstore.Options{})
	if got := walk(s2); len(got) != 3 || s2.Head() != head {
		t.Fatalf("after reopen: %q, head %s", got, s2.Head())
	}
	for _, bad := range []string{"", "Upper", "a/../b", "a//b", "x.lock", "a/tmp_x", "sp ace", ".hidden"} {
		if _, err := s2.AppendSide(ctx, bad, map[string][]byte{"f": nil}, "m"); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("side name %q: %v", bad, err)
		}
	}
	for _, bad := range []string{"a/b", "", ".."} {
		if _, err := s2.AppendSide(ctx, "ok", map[string][]byte{bad: nil}, "m"); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("side file %q: %v", bad, err)
		}
	}
}
