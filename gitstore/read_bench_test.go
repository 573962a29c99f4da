package gitstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU the process used so far (user and system): on a
// loaded machine it measures the work where wall time measures the queue.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopCPU runs f in b.Loop and reports the CPU per iteration.
func loopCPU(b *testing.B, f func()) {
	start := cpuTime()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(n), "cpu-ns/op")
}

// mergedStore returns a store of n contexts (group commits of 1024)
// merged into one pack: by a merge (deltas) when deltas is true, else
// with every object whole, as merges wrote packs before deltas. Its L1
// cache holds nothing, so reads come from the pack.
func mergedStore(b *testing.B, n int, deltas bool) *Store {
	s, err := Open(b.TempDir(), Options{CacheBytes: 1, MergePacks: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	fillApply(b, s, n, 512, 1024)
	packs := s.allPacks()
	if deltas {
		err = s.merge(packs)
	} else {
		err = mergeWhole(s, packs)
	}
	if err != nil {
		b.Fatal(err)
	}
	if got := len(s.allPacks()); got != 1 {
		b.Fatalf("%d packs after the merge, want 1", got)
	}
	return s
}

// mergeWhole rewrites packs (newest first) as one pack of whole objects,
// oldest first.
func mergeWhole(s *Store, packs []*pack) error {
	pw := newPackWriter()
	for i := len(packs) - 1; i >= 0; i-- {
		for _, e := range packs[i].idx.byOffset() {
			t, data, err := s.repo.readObject(e.hash)
			if err != nil {
				return err
			}
			pw.add(t, data)
		}
	}
	data, idx := pw.finish()
	return s.repo.replacePacks(packs, data, idx)
}

func (s *Store) allPacks() []*pack {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	return append([]*pack(nil), s.repo.packs...)
}

// BenchmarkRead_Old measures reads from one pack of 8192 contexts, its
// objects whole ("whole", as before deltas) or written by a merge
// ("delta"): a random context by id (its blob; in "delta", one delta
// away from a keyframe blob), the root tree of a random commit of the
// history (in "delta", up to maxDeltaDepth deltas away from a whole tree)
// and the root tree of the head. The pack's cache of delta bases is
// emptied before each read ("cold") or kept ("warm").
func BenchmarkRead_Old(b *testing.B) {
	for _, deltas := range []bool{false, true} {
		layout := map[bool]string{false: "whole", true: "delta"}[deltas]
		s := mergedStore(b, 8192, deltas)
		ctx := context.Background()
		s.cat.mu.RLock()
		ents := append([]*entry(nil), s.cat.ordered...)
		s.cat.mu.RUnlock()
		var roots []Hash // of every commit, newest first
		for h := s.Head(); !h.IsZero(); {
			c, err := s.readCommit(h)
			if err != nil {
				b.Fatal(err)
			}
			roots = append(roots, c.tree)
			h = zeroHash
			if len(c.parents) > 0 {
				h = c.parents[0]
			}
		}
		if len(roots) != len(ents) {
			b.Fatalf("%s: %d commits for %d contexts", layout, len(roots), len(ents))
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for _, warm := range []bool{false, true} {
			cache := map[bool]string{false: "cold", true: "warm"}[warm]
			read := func(b *testing.B, h func() Hash, want objType) {
				loopCPU(b, func() {
					if !warm {
						dropBaseCaches(s)
					}
					if _, err := s.repo.readTyped(h(), want); err != nil {
						b.Fatal(err)
					}
				})
			}
			b.Run(fmt.Sprintf("%s/context/%s", layout, cache), func(b *testing.B) {
				loopCPU(b, func() {
					if !warm {
						dropBaseCaches(s)
					}
					if _, err := s.GetRaw(ctx, ents[rng.IntN(len(ents))].id); err != nil {
						b.Fatal(err)
					}
				})
			})
			b.Run(fmt.Sprintf("%s/old-root-tree/%s", layout, cache), func(b *testing.B) {
				read(b, func() Hash { return roots[rng.IntN(len(roots))] }, objTree)
			})
			b.Run(fmt.Sprintf("%s/head-root-tree/%s", layout, cache), func(b *testing.B) {
				read(b, func() Hash { return roots[0] }, objTree)
			})
		}
	}
}

// BenchmarkMerge measures the CPU of merging 8 group commits of 1024
// contexts into one pack, in memory (the pack is not written).
func BenchmarkMerge(b *testing.B) {
	s, err := Open(b.TempDir(), Options{MergePacks: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fillApply(b, s, 8192, 512, 1024)
	packs := s.allPacks()
	start := cpuTime()
	for b.Loop() {
		mergeInMemory(b, packs)
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/8192, "cpu-ns/context")
}

// BenchmarkMerge_Blocks measures the CPU of merging 8 merged packs (each
// of 8 group commits of 1024 contexts) into one, in memory: the merge of
// an upper tier, which copies each pack as a block and builds the index
// of them all.
func BenchmarkMerge_Blocks(b *testing.B) {
	s, packs := mergedPacks(b)
	defer s.Close()
	start := cpuTime()
	for b.Loop() {
		mergeInMemory(b, packs)
	}
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/(8*8192), "cpu-ns/context")
}

// mergedPacks returns a store holding 8 merged packs, each of 8 group
// commits of 1024 contexts.
func mergedPacks(b *testing.B) (*Store, []*pack) {
	s, err := Open(b.TempDir(), Options{MergePacks: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	batches := 0
	fillApplyEach(b, s, 8*8192, 512, 1024, func() {
		if batches++; batches%8 == 0 {
			if err := s.merge(s.allPacks()[:8]); err != nil { // the 8 newest
				b.Fatal(err)
			}
		}
	})
	packs := s.allPacks()
	if len(packs) != 8 {
		b.Fatalf("%d packs, want 8", len(packs))
	}
	return s, packs
}

// BenchmarkMerge_Written compares, in one process, the two ways of
// writing the merge of BenchmarkMerge_Blocks to disk: the pack assembled
// in memory and then written to a temp file (as merges did before
// packstream.go), and the pack streamed to its temp file as it is
// assembled; each ends with the pack and its index fsynced (neither is
// installed, so the packs merged stay). The two alternate, the order
// swapped every iteration. It reports the CPU per context and the bytes
// allocated per merge of each.
func BenchmarkMerge_Written(b *testing.B) {
	s, packs := mergedPacks(b)
	defer s.Close()
	var total int64
	for _, p := range packs {
		total += p.size
	}
	stage := func(data []byte) {
		tmp, err := stageFile(s.repo.spares, s.repo.packDir, data)
		if err != nil {
			b.Fatal(err)
		}
		os.Remove(tmp)
	}
	ways := [2]func(){
		func() { // in memory, then written
			data, idx := mergeInMemory(b, packs)
			stage(data)
			stage(idx.data)
		},
		func() { // streamed
			tmp, idx, err := mergeBlocks(b, s.repo, packs).pw.finishStream()
			if err != nil {
				b.Fatal(err)
			}
			os.Remove(tmp)
			stage(idx.data)
		},
	}
	var cpu [2]time.Duration
	var alloc [2]uint64
	var ms runtime.MemStats
	n := 0
	for b.Loop() {
		for j := range 2 {
			k := j ^ n&1
			runtime.ReadMemStats(&ms)
			c0, a0 := cpuTime(), ms.TotalAlloc
			ways[k]()
			runtime.ReadMemStats(&ms)
			cpu[k] += cpuTime() - c0
			alloc[k] += ms.TotalAlloc - a0
		}
		n++
	}
	perContext := func(k int) float64 { return float64(cpu[k].Nanoseconds()) / float64(n) / (8 * 8192) }
	b.ReportMetric(perContext(0), "cpu-ns/context-memory")
	b.ReportMetric(perContext(1), "cpu-ns/context-streamed")
	b.ReportMetric(perContext(1)/perContext(0), "cpu-streamed/memory")
	b.ReportMetric(float64(alloc[0])/float64(n)/(1<<20), "MiB-alloc/merge-memory")
	b.ReportMetric(float64(alloc[1])/float64(n)/(1<<20), "MiB-alloc/merge-streamed")
	b.ReportMetric(float64(total)/(1<<20), "MiB-packs-merged")
}
