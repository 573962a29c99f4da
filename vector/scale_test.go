package vector_test

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/vector"
)

// TestScale measures build rate, memory, latency and recall at a size set by
// the environment; it is skipped unless NEXUS_VECTOR_SCALE_N is set:
//
//	NEXUS_VECTOR_SCALE_N=100000 nice -n 19 go test -run TestScale -v -timeout 2h ./vector/
//
// Other knobs: NEXUS_VECTOR_DIM (384), NEXUS_VECTOR_QUERIES (500),
// NEXUS_VECTOR_WORKERS (2), NEXUS_VECTOR_CLUSTERS (1000), NEXUS_VECTOR_SIGMA
// (1, the spread of a cluster), NEXUS_VECTOR_M, NEXUS_VECTOR_EFC (defaults of
// DefaultOptions) and NEXUS_VECTOR_EFS, a comma-separated list of efSearch
// values (32,64,128).
func TestScale(t *testing.T) {
	n := envInt(t, "NEXUS_VECTOR_SCALE_N", 0)
	if n == 0 {
		t.Skip("set NEXUS_VECTOR_SCALE_N to run")
	}
	dim := envInt(t, "NEXUS_VECTOR_DIM", 384)
	nq := envInt(t, "NEXUS_VECTOR_QUERIES", 500)
	workers := envInt(t, "NEXUS_VECTOR_WORKERS", 2)
	opts := vector.Options{M: envInt(t, "NEXUS_VECTOR_M", 0), EfConstruction: envInt(t, "NEXUS_VECTOR_EFC", 0)}
	efs := []int{32, 64, 128}
	if s := os.Getenv("NEXUS_VECTOR_EFS"); s != "" {
		efs = efs[:0]
		for f := range strings.SplitSeq(s, ",") {
			ef, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			efs = append(efs, ef)
		}
	}

	start := time.Now()
	sigma := 1.0
	if s := os.Getenv("NEXUS_VECTOR_SIGMA"); s != "" {
		var err error
		if sigma, err = strconv.ParseFloat(s, 64); err != nil {
			t.Fatal(err)
		}
	}
	clusters := envInt(t, "NEXUS_VECTOR_CLUSTERS", 1000)
	base, queries := dataset(1, n, nq, dim, clusters, sigma)
	t.Logf("generated %d x %d clustered vectors (%d clusters, sigma %g) and %d queries in %v", n, dim, clusters, sigma, nq, time.Since(start).Round(time.Millisecond))

	before := heapInUse()
	ix, err := vector.New(dim, opts)
	if err != nil {
		t.Fatal(err)
	}
	start, cpu := time.Now(), cpuTime()
	build(t, ix, base, workers)
	took, cpu := time.Since(start), cpuTime()-cpu
	after := heapInUse()
	t.Logf("options %+v", ix.Options())
	t.Logf("build: %d vectors, %d goroutines, %v, %.0f inserts/s; %v CPU, %.0f inserts per CPU-second",
		n, workers, took.Round(time.Millisecond), float64(n)/took.Seconds(), cpu.Round(time.Millisecond), float64(n)/cpu.Seconds())
	t.Logf("memory: %.0f bytes per vector (heap in use, raw vector %d bytes)", float64(after-before)/float64(n), dim*4)

	truth := make([][]vector.Result, nq)
	start = time.Now()
	for i, q := range queries {
		if truth[i], err = ix.Exact(q, 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("exact: %v per query", (time.Since(start) / time.Duration(nq)).Round(time.Microsecond))

	for _, ef := range efs {
		lat := make([]time.Duration, nq)
		var rec float64
		for i, q := range queries {
			s := time.Now()
			got, err := ix.SearchEf(q, 10, ef, nil)
			lat[i] = time.Since(s)
			if err != nil {
				t.Fatal(err)
			}
			rec += recall(got, truth[i])
		}
		slices.Sort(lat)
		t.Logf("efSearch %4d: recall@10 %.4f, p50 %v, p99 %v", ef, rec/float64(nq),
			lat[nq/2].Round(time.Microsecond), lat[nq*99/100].Round(time.Microsecond))
	}

	// Persistence: write to a file, read it back, and check that the
	// copy answers as the original does.
	path := filepath.Join(t.TempDir(), "index")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	size, err := ix.WriteTo(f)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(start)
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start = time.Now()
	back, err := vector.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("persistence: %d bytes (%.0f per vector), WriteTo %v, Read %v",
		size, float64(size)/float64(n), wrote.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, q := range queries[:min(nq, 50)] {
		a, _ := ix.Search(q, 10, nil)
		b, _ := back.Search(q, 10, nil)
		if !slices.Equal(a, b) {
			t.Fatalf("the index read back answers differently")
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
