package gitstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
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
// were, every context readable: a merge of write-path packs, which writes
// at the end (its segment is under 16 MiB), and one of merged packs,
// copied as blocks, which writes the first at once and stops there.
func TestMerge_StreamWriteFails(t *testing.T) {
	for _, blocks := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocks=%v", blocks), func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillApply(t, s, 4*64, 512, 64)
			if blocks {
				for range 2 {
					if err := s.merge(s.allPacks()[:2]); err != nil { // two write-path packs: the newest
						t.Fatal(err)
					}
					s.repo.mu.Lock()
					s.repo.packs = append(s.repo.packs[1:], s.repo.packs[0]) // the merged one last: not taken again
					s.repo.mu.Unlock()
				}
			}
			before, onDisk := packNames(s), packFiles(t, s)
			var names []string
			recordMergeFiles(t, &names, func(f *os.File) (*os.File, error) {
				f.Close()
				return os.Open(f.Name()) // read only: every write fails
			})
			packs := s.allPacks()
			err = s.merge(packs)
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Op != "write" {
				t.Fatalf("merge with failing writes: %v; want the write's error", err)
			}
			// Merging blocks, the merge stops at the first pack it adds,
			// the oldest; else it fails writing the pack at the end.
			if want := "merge: "; blocks {
				if want = "merge " + packs[len(packs)-1].name + ": "; !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("merge: %v; want it to stop at the first pack (%q)", err, want)
				}
			} else if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("merge: %v; want it to fail at the end (%q)", err, want)
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

// TestMerge_NoTempFile checks that a merge that cannot create its file
// (a full disk) returns why and leaves the packs as they were.
func TestMerge_NoTempFile(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillApply(t, s, 2*64, 512, 64)
	before := packNames(s)
	saved := mergeFile
	defer func() { mergeFile = saved }()
	mergeFile = func(*repo) (*os.File, error) { return nil, &os.PathError{Op: "open", Path: "tmp", Err: syscall.ENOSPC} }
	if err := s.merge(s.allPacks()); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("merge without a temp file: %v; want ENOSPC", err)
	}
	if after := packNames(s); !slices.Equal(after, before) {
		t.Fatalf("packs after the failed merge: %v, before: %v", after, before)
	}
	checkAllReadable(t, s)
}
