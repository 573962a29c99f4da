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

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/internal/quality"
	"github.com/nexus-mem/nexus/search"
)

func runBenchQuality(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench quality", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noise := fs.Int("noise", 20000, "noise contexts added to each set's documents")
	seed := fs.Uint64("seed", 1, "seed of the noise and of the write order")
	sets := fs.String("sets", "", "comma-separated sets to run (default: all)")
	embedder := fs.String("embedder", "hash", "built-in embedder: hash (nexus-hash-v1-384) or cooc (trained on each memory's contexts)")
	mix := fs.Float64("cooc-mix", 0, "with --embedder cooc: the learned part's share of the similarity (default: embed.CoocOptions' default)")
	tune := fs.Bool("tune", false, "sweep the fusion weights on the tuning questions and print hit@5 and nDCG@10 for each")
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
	cfg := quality.Config{Noise: *noise, Seed: *seed}
	switch *embedder {
	case "hash":
		cfg.Embedder = embed.NewHashing(embed.DefaultDimension)
	case "cooc":
		cfg.Train = func(ctx context.Context, texts []string) (nexus.Embedder, error) {
			return embed.TrainCooc(ctx, texts, embed.CoocOptions{Mix: *mix})
		}
	default:
		return usagef("--embedder %q: want hash or cooc", *embedder)
	}
	fmt.Fprintf(stdout, "# nexus bench quality — %s, %d noise contexts per set, seed %d, embedder %s, GOMAXPROCS %d\n\n",
		time.Now().UTC().Format(time.RFC3339), *noise, *seed, *embedder, runtime.GOMAXPROCS(0))
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
		c := cfg
		c.Dir, c.Progress = work, func(_ string, done, total int) { progress(done, total) }
		m, err := quality.Build(ctx, s, c)
		if err != nil {
			return err
		}
		if *tune {
			if err := printTune(ctx, m, stdout); err != nil {
				m.RemoveAll(work)
				return err
			}
		}
		fmt.Fprintf(stdout, "## %s — %d documents, %d questions (%d held out), model %s, built in %s\n\n",
			s.Name, len(s.Docs), len(s.Questions), held, m.Engine.Model(), time.Since(t0).Round(time.Millisecond))
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

// tuneGrid is the grid of fusion weights --tune sweeps.
func tuneGrid() []search.Fusion {
	var out []search.Fusion
	for s := 0; s <= 12; s++ {
		for l := 0; l <= 12; l++ {
			out = append(out, search.Fusion{Semantic: float64(s) / 20, Exact: float64(l) / 20})
		}
	}
	return out
}

// printTune prints the tuning questions' figures of hybrid search for each
// weight of the grid, as TSV lines "tune set semantic exact hit@5 ndcg@10".
func printTune(ctx context.Context, m *quality.Memory, w io.Writer) error {
	grid := tuneGrid()
	res, err := m.Tune(ctx, quality.Tune, grid)
	if err != nil {
		return err
	}
	for i, f := range grid {
		fmt.Fprintf(w, "tune\t%s\t%.2f\t%.2f\t%.4f\t%.4f\n", m.Set.Name, f.Semantic, f.Exact, res[i].Hit5, res[i].NDCG10)
	}
	return nil
}
