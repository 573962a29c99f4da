package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/internal/quality"
)

func runBenchQuality(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench quality", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noise := fs.Int("noise", 20000, "noise contexts added to each set's documents")
	seed := fs.Uint64("seed", 1, "seed of the noise and of the write order")
	sets := fs.String("sets", "", "comma-separated sets to run (default: all)")
	dir := fs.String("dir", "", "work directory (default: a new temp dir, removed at the end)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *noise < 0 {
		return usagef("--noise must not be negative")
	}
	all, err := quality.Sets()
	if err != nil {
		return err
	}
	var chosen []*quality.Set
	for _, s := range all {
		if *sets == "" || slices.Contains(strings.Split(*sets, ","), s.Name) {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) == 0 {
		return usagef("no set named in --sets %q", *sets)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-quality-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	emb := embed.NewHashing(embed.DefaultDimension)
	fmt.Fprintf(stdout, "# nexus bench quality — %s, %d noise contexts per set, seed %d, embedder %s, GOMAXPROCS %d\n\n",
		time.Now().UTC().Format(time.RFC3339), *noise, *seed, emb.Model(), runtime.GOMAXPROCS(0))
	progress := newProgress(stderr, "build")
	for _, s := range chosen {
		held := 0
		for i := range s.Questions {
			if quality.HeldOut(i) {
				held++
			}
		}
		work := filepath.Join(*dir, s.Name)
		t0 := time.Now()
		m, err := quality.Build(ctx, s, quality.Config{Noise: *noise, Seed: *seed, Embedder: emb, Dir: work,
			Progress: func(_ string, done, total int) { progress(done, total) }})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "## %s — %d documents, %d questions (%d held out), built in %s\n\n",
			s.Name, len(s.Docs), len(s.Questions), held, time.Since(t0).Round(time.Millisecond))
		fmt.Fprintf(stdout, "| split | mode | hit@1 | hit@5 | hit@10 | MRR@10 | nDCG@10 |\n|---|---|---:|---:|---:|---:|---:|\n")
		for _, split := range []quality.Split{quality.HeldOutSplit, quality.Tune} {
			res, err := m.Evaluate(ctx, split, quality.Modes...)
			if err != nil {
				m.RemoveAll(work)
				return err
			}
			for _, mode := range quality.Modes {
				r := res[mode]
				name := mode
				if mode == "bm25" {
					name = "plain BM25 (reference)"
				}
				fmt.Fprintf(stdout, "| %s | %s | %.3f | %.3f (%d/%d) | %.3f | %.3f | %.3f |\n",
					split, name, r.Hit1, r.Hit5, r.Hits5, r.N, r.Hit10, r.MRR, r.NDCG10)
			}
		}
		fmt.Fprintln(stdout)
		if err := m.RemoveAll(work); err != nil {
			return err
		}
	}
	return nil
}
