package gitstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// recordMergeFiles makes mergeFile list the files it hands out in *names
// (opened by open, the default's file by default) until the test ends.
func recordMergeFiles(t *testing.T, names *[]string, open func(f *os.File) (*os.File, error)) {
	saved := mergeFile
	t.Cleanup(func() { mergeFile = saved })
	mergeFile = func(r *repo) (*os.File, error) {
		f, err := saved(r)
		if err != nil {
			return nil, err
		}
		*names = append(*names, f.Name())
		if open == nil {
			return f, nil
		}
		return open(f)
	}
}

// TestMerge_StreamedAsInMemory checks that a merge that streams its pack
// to a file, encoding packs and copying one as a block between them,
// writes the same bytes as the same merge assembled in memory, when it
// writes a megabyte at a time and when it writes every entry as it comes,
// and that stock git accepts the result.
func TestMerge_StreamedAsInMemory(t *testing.T) {
	for _, flush := range []int{streamFlush, 1} {
		t.Run(fmt.Sprintf("flush=%d", flush), func(t *testing.T) {
			saved := streamFlush
			streamFlush = flush
			defer func() { streamFlush = saved }()
			s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillApply(t, s, 6*64, 512, 64)
			packs := s.allPacks()
			if err := s.merge(packs[1:3]); err != nil { // packs of the middle: a block in the next merge
				t.Fatal(err)
			}
			packs = s.allPacks()
			want, wantIdx := mergeInMemory(t, packs)
			var names []string
			recordMergeFiles(t, &names, nil)
			if err := s.merge(packs); err != nil {
				t.Fatal(err)
			}
			after := s.allPacks()
			if len(after) != 1 || after[0].name != "pack-"+wantIdx.packSum().String() {
				t.Fatalf("packs after the merge: %v, want the one of the merge in memory, %s", packNames(s), wantIdx.packSum())
			}
			got, err := os.ReadFile(after[0].f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the streamed pack (%d bytes) differs from the one assembled in memory (%d bytes)", len(got), len(want))
			}
			if len(names) != 1 {
				t.Fatalf("the merge took %d temp files, want 1", len(names))
			}
			if _, err := os.Stat(names[0]); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the merge's temp file %s is still there (%v)", names[0], err)
			}
			checkAllReadable(t, s)
			if out, err := exec.Command("git", "--git-dir", s.GitDir(), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
				t.Fatalf("git fsck: %v\n%s", err, out)
			}
		})
	}
}

// TestMerge_StreamWriteFails checks that a merge whose writes to its file
// fail returns the error, removes the file and leaves the packs as they
// were, every context readable: when the writes fail at the end (the
// whole pack under a megabyte) and as soon as they begin (every entry
// written as it comes, which stops the merge at its first pack).
func TestMerge_StreamWriteFails(t *testing.T) {
	for _, flush := range []int{streamFlush, 1} {
		t.Run(fmt.Sprintf("flush=%d", flush), func(t *testing.T) {
			saved := streamFlush
			streamFlush = flush
			defer func() { streamFlush = saved }()
			s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillApply(t, s, 4*64, 512, 64)
			before, onDisk := packNames(s), packFiles(t, s)
			var names []string
			recordMergeFiles(t, &names, func(f *os.File) (*os.File, error) {
				f.Close()
				return os.Open(f.Name()) // read only: every write fails
			})
			err = s.merge(s.allPacks())
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Op != "write" {
				t.Fatalf("merge with failing writes: %v; want the write's error", err)
			}
			if len(names) != 1 {
				t.Fatalf("the merge took %d temp files, want 1", len(names))
			}
			if _, err := os.Stat(names[0]); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the failed merge's temp file %s is still there (%v)", names[0], err)
			}
			if after := packNames(s); !slices.Equal(after, before) {
				t.Fatalf("packs after the failed merge: %v, before: %v", after, before)
			}
			if got := packFiles(t, s); !slices.Equal(got, onDisk) {
				t.Fatalf("pack files after the failed merge: %v, before: %v", got, onDisk)
			}
			checkAllReadable(t, s)
		})
	}
}

// checkAllReadable reads every context of the catalog back and checks it
// against its blob's id.
func checkAllReadable(t *testing.T, s *Store) {
	t.Helper()
	s.cat.mu.RLock()
	ents := append([]*entry(nil), s.cat.ordered...)
	s.cat.mu.RUnlock()
	for _, e := range ents {
		if raw, err := s.GetRaw(context.Background(), e.id); err != nil || hashObject(objBlob, raw) != e.blob {
			t.Fatalf("read %s: %v", e.id, err)
		}
	}
}
