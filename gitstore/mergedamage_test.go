package gitstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"
)

// A merge never carries damage into a new pack: whatever the damage in
// a pack it merges (caught by the entry's CRC-32, by the zlib stream's
// Adler-32, or only by the object id because every checksum around the
// bytes was made to match), the merge fails with a CorruptError naming
// the object, and the packs stay as they were. Trees of the write path
// take the stored-block decoder, blobs the general one; a merged pack is
// copied as a block, after its entries' CRC-32s are checked.
func TestMerge_RefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, s *Store) Hash
	}{
		{"tree byte, CRC-32", "CRC-32 mismatch", func(t *testing.T, s *Store) Hash {
			return damageStoredTree(t, s, false, false)
		}},
		{"tree byte, CRC-32 made to match", "checksum", func(t *testing.T, s *Store) Hash {
			return damageStoredTree(t, s, true, false)
		}},
		{"tree byte, CRC-32 and Adler-32 made to match", "content hashes to", func(t *testing.T, s *Store) Hash {
			return damageStoredTree(t, s, true, true)
		}},
		{"blob under the id of another", "content hashes to", forgePack},
		{"byte of a merged pack", "CRC-32 mismatch", func(t *testing.T, s *Store) Hash {
			packs := s.allPacks()
			if err := s.merge(packs[len(packs)-2:]); err != nil { // the two oldest
				t.Fatal(err)
			}
			merged := s.allPacks()[0]
			e := merged.idx.byOffset()[len(merged.idx.byOffset())/2]
			flipPackByte(t, s, merged, int64(e.offset)+3)
			return e.hash
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillApply(t, s, 4*64, 512, 64)
			victim := tc.plant(t, s)
			before := packNames(s)
			onDisk := packFiles(t, s)
			err = s.merge(s.allPacks())
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Object != victim || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("merge: %v; want a CorruptError of %s saying %q", err, victim, tc.want)
			}
			if after := packNames(s); !slices.Equal(after, before) {
				t.Fatalf("packs after the refused merge: %v, before: %v", after, before)
			}
			if got := packFiles(t, s); !slices.Equal(got, onDisk) {
				t.Fatalf("pack files after the refused merge: %v, before: %v", got, onDisk)
			}
		})
	}
}

// damageStoredTree flips a byte of the data of a tree stored by the
// write path (in one stored zlib block) in the newest pack; with crc, the
// index's CRC-32 of the entry is made to match, and with adler the zlib
// stream's Adler-32 too. It returns the tree's id.
func damageStoredTree(t *testing.T, s *Store, crc, adler bool) Hash {
	p := s.allPacks()[0]
	ents := p.idx.byOffset()
	for i, e := range ents[:len(ents)-1] {
		raw := make([]byte, ents[i+1].offset-e.offset)
		if _, err := p.f.ReadAt(raw, int64(e.offset)); err != nil {
			t.Fatal(err)
		}
		pe, err := parsePacked(e, raw)
		if err != nil {
			t.Fatal(err)
		}
		z := raw[pe.hdr:]
		if pe.t != objTree || pe.size < 8 || z[2] > 1 || int(binary.LittleEndian.Uint16(z[3:])) != int(pe.size) {
			continue // not a tree in one stored block
		}
		z[2+5+4] ^= 0x01 // a byte of the entry's name
		if adler {
			binary.BigEndian.PutUint32(z[len(z)-4:], adler32.Checksum(z[7:7+pe.size]))
		}
		writePackAt(t, s, p, int64(e.offset), raw)
		if crc {
			list := p.idx.entries()
			for j := range list {
				if list[j].hash == e.hash {
					list[j].crc = crc32.ChecksumIEEE(raw)
				}
			}
			p.idx = buildIndex(list, p.idx.packSum())
		}
		return e.hash
	}
	t.Fatal("no tree stored in one block in the newest pack")
	return Hash{}
}

// forgePack adds a pack whose one entry is well formed (CRC-32, Adler-32
// and the pack's checksum all match) but holds other content than its id
// says: a blob compressed at level 1, which the general decoder reads. It
// returns the id.
func forgePack(t *testing.T, s *Store) Hash {
	blob := Hash{0xb1}
	pw := newPackWriter()
	level1, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	pw.claim(blob)
	pw.addHashed(level1, blob, objBlob, bytes.Repeat([]byte("not the blob this id names "), 20))
	data, idx := pw.finish()
	if err := s.repo.writePack(data, idx); err != nil {
		t.Fatal(err)
	}
	return blob
}

// flipPackByte flips the byte at off of p's file.
func flipPackByte(t *testing.T, s *Store, p *pack, off int64) {
	var b [1]byte
	if _, err := p.f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	writePackAt(t, s, p, off, b[:])
}

// writePackAt writes b at off of p's file, in place.
func writePackAt(t *testing.T, s *Store, p *pack, off int64, b []byte) {
	f, err := os.OpenFile(filepath.Join(s.repo.packDir, p.name+".pack"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func packNames(s *Store) []string {
	var names []string
	for _, p := range s.allPacks() {
		names = append(names, p.name)
	}
	return names
}

// packFiles lists the files of the pack directory.
func packFiles(t *testing.T, s *Store) []string {
	ents, err := os.ReadDir(s.repo.packDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "pack-") {
			names = append(names, e.Name())
		}
	}
	return names
}

// An object that two packs of a merge hold (the write path may write
// again what an older pack holds: after a restore, trees go back to older
// versions) is in the merged pack once, whether the packs holding it are
// decoded ("whole": written by the write path), one of them is copied as
// a block ("block and whole": a merged pack and the write path's), or both
// are ("two blocks"): a repeat among copied blocks makes the merge start
// again object by object. Every context reads back and stock git accepts
// the pack.
func TestMerge_RepeatedObjects(t *testing.T) {
	for _, tc := range []struct {
		name          string
		mergeFirst    bool // the written packs merged (so copied as a block) first
		mergeRepeated bool // the pack of repeated blobs too
	}{
		{"whole", false, false},
		{"block and whole", true, false},
		{"two blocks", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20, CacheBytes: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fillApply(t, s, 3*64, 512, 64)
			if tc.mergeFirst {
				if err := s.merge(s.allPacks()); err != nil {
					t.Fatal(err)
				}
			}
			s.cat.mu.RLock()
			ents := append([]*entry(nil), s.cat.ordered...)
			s.cat.mu.RUnlock()
			pw := newPackWriter()
			for _, e := range ents[:5] { // blobs of the oldest pack, again in a new one
				data, err := s.repo.readTyped(e.blob, objBlob)
				if err != nil {
					t.Fatal(err)
				}
				pw.add(objBlob, data)
			}
			data, idx := pw.finish()
			if err := s.repo.writePack(data, idx); err != nil {
				t.Fatal(err)
			}
			if tc.mergeRepeated { // blob deltas against a keyframe: copied as a block
				if err := s.merge(s.allPacks()[:1]); err != nil {
					t.Fatal(err)
				}
			}
			unique := map[Hash]bool{}
			for _, p := range s.allPacks() {
				for _, e := range p.idx.entries() {
					unique[e.hash] = true
				}
			}
			if err := s.merge(s.allPacks()); err != nil {
				t.Fatal(err)
			}
			packs := s.allPacks()
			if len(packs) != 1 {
				t.Fatalf("%d packs after the merge", len(packs))
			}
			list := packs[0].idx.entries()
			if len(list) != len(unique) {
				t.Fatalf("the merged pack holds %d objects, want the %d ids of its packs", len(list), len(unique))
			}
			for i := 1; i < len(list); i++ {
				if list[i].hash == list[i-1].hash {
					t.Fatalf("%s is in the merged pack twice", list[i].hash)
				}
			}
			for _, e := range ents {
				if raw, err := s.GetRaw(context.Background(), e.id); err != nil || hashObject(objBlob, raw) != e.blob {
					t.Fatalf("read %s after the merge: %v", e.id, err)
				}
			}
			if out, err := exec.Command("git", "--git-dir", s.GitDir(), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
				t.Fatalf("git fsck: %v\n%s", err, out)
			}
		})
	}
}
