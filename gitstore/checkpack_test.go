package gitstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
)

// A deep check names a damaged entry by its CRC-32 and the damaged pack by
// its checksum (first), reading the pack a window at a time.
func TestFsck_PackEntryDamageNamed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("entry ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.repo.mu.RLock()
	victim := s.repo.packs[1]
	s.repo.mu.RUnlock()
	ents := victim.idx.byOffset()
	e := ents[len(ents)/2]
	end := ents[len(ents)/2+1].offset
	name := victim.name
	s.Close()

	path := filepath.Join(dir, "repo.git", "objects", "pack", name+".pack")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[end-1] ^= 0x01 // the entry's last byte
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	crc := Problem{Kind: ProblemObject, Object: e.hash.String(), Message: fmt.Sprintf("object %s is corrupt: in %s at offset %d: CRC-32 mismatch", e.hash, name, e.offset)}
	sum := Problem{Kind: ProblemPack, Object: name + ".pack", Message: "checksum mismatch: the pack is damaged"}
	for _, want := range []Problem{crc, sum} {
		if !slices.Contains(rep.Problems, want) {
			t.Fatalf("the deep check does not report %s; it reports %v", want, rep.Problems)
		}
	}
	// The damaged pack first: it is the cause, and a repair's summary
	// names the first problem.
	if i, j := slices.Index(rep.Problems, sum), slices.Index(rep.Problems, crc); i > j {
		t.Errorf("the pack's problem comes after its entry's: %v", rep.Problems)
	}
}
