package gitstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// A backup is a verified bundle; restoring it into a new data directory
// gives a store with every context, a clean fsck and the side refs; a
// truncated or damaged bundle is refused; retention keeps the newest.
func TestBackup_RoundTrip(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	var ids []nexus.ID
	for i := range 30 {
		ids = append(ids, mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("backup me ", i+1)}).ID)
	}
	if _, err := s.AppendSide(ctx, "embeddings/m", map[string][]byte{"segment": []byte("vectors")}, "seg"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	info, err := s.Backup(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Head != s.Head().String() || info.Refs != 2 || info.Bytes == 0 {
		t.Fatalf("backup info %+v", info)
	}
	data := filepath.Join(t.TempDir(), "restored")
	if _, err := gitstore.RestoreBackup(ctx, info.Path, data); err != nil {
		t.Fatal(err)
	}
	r := MustOpen(t, data, gitstore.Options{})
	for _, id := range ids {
		if _, err := r.Get(ctx, id); err != nil {
			t.Fatalf("restored store lacks %s: %v", id, err)
		}
	}
	var segs int
	r.WalkSide(ctx, "embeddings/m", func(map[string][]byte) error { segs++; return nil })
	if rep, err := r.Fsck(ctx, true); err != nil || !rep.Clean() || segs != 1 || r.Head() != s.Head() {
		t.Fatalf("restored: %v %+v, %d segments, head %s", err, rep, segs, r.Head())
	}
	if _, err := gitstore.RestoreBackup(ctx, info.Path, data); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("restore over a repository: %v", err)
	}
	b, _ := os.ReadFile(info.Path)
	for name, bad := range map[string][]byte{"truncated": b[:len(b)-100], "bit flip": flip(b, len(b)-200), "empty": nil} {
		p := filepath.Join(t.TempDir(), "bad.bundle")
		os.WriteFile(p, bad, 0o644)
		if _, err := gitstore.VerifyBackup(ctx, p); err == nil {
			t.Errorf("%s bundle verified", name)
		}
		if _, err := gitstore.RestoreBackup(ctx, p, filepath.Join(t.TempDir(), "x")); err == nil {
			t.Errorf("%s bundle restored", name)
		}
	}
	for range 3 {
		time.Sleep(1100 * time.Millisecond) // names carry the second
		mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "more"})
		if _, err := s.Backup(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := gitstore.PruneBackups(dir, 2)
	list, _ := gitstore.ListBackups(dir)
	if err != nil || len(gone) != 2 || len(list) != 2 || list[0].Head != s.Head().String()[:12] {
		t.Fatalf("prune: %v, gone %v, left %+v", err, gone, list)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x20
	return c
}

// A backup taken while writes go on succeeds and holds at least every
// context acknowledged before it started.
func TestBackup_DuringWrites(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	before := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "before"})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("w", i%50+1)})
		}
	}()
	dir := t.TempDir()
	var infos []*gitstore.BackupInfo
	for range 3 {
		info, err := s.Backup(ctx, dir)
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("backup during writes: %v", err)
		}
		infos = append(infos, info)
		time.Sleep(1100 * time.Millisecond)
	}
	close(stop)
	<-done
	data := filepath.Join(t.TempDir(), "r")
	if _, err := gitstore.RestoreBackup(ctx, infos[0].Path, data); err != nil {
		t.Fatal(err)
	}
	r := MustOpen(t, data, gitstore.Options{})
	if _, err := r.Get(ctx, before.ID); err != nil || r.Head().String() != infos[0].Head {
		t.Fatalf("restored: %v, head %s vs %s", err, r.Head(), infos[0].Head)
	}
}
