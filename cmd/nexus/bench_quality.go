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
	embedder := fs.String("embedder", "hash,cooc", "comma-separated built-in embedders: hash (nexus-hash-v1-384), cooc (trained on each memory's contexts, as a node with search.embedder: cooc trains it)")
	mix := fs.Float64("cooc-mix", 0, "with --embedder cooc: the learned part's share of the similarity (default: embed.CoocOptions' default)")
	tune := fs.Bool("tune", false, "sweep the fusion weights on the tuning questions and print hit@5 and nDCG@10 for each")
	sweep := fs.Bool("sweep", false, "with --embedder hash: sweep BM25's k1 and b and the hashing model's share on the tuning questions only, at 300 noise contexts (the size of TestHybridNotBelowKeyword) and at --noise; print their figures and no tables")
	dir := fs.String("dir", "", "work directory (default: a new temp dir, removed at the end)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *noise < 0 {
		return usagef("--noise must not be negative")
	}
	var embs []string
	for _, e := range strings.Split(*embedder, ",") {
		if e != "hash" && e != "cooc" {
			return usagef("--embedder %q: want hash, cooc or both", *embedder)
		}
		if !slices.Contains(embs, e) {
			embs = append(embs, e)
		}
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
	if *sweep && (len(embs) != 1 || embs[0] != "hash" || *tune) {
		return usagef("--sweep goes with --embedder hash alone, without --tune")
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-quality-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	fmt.Fprintf(stdout, "# nexus bench quality — %s, %d noise contexts per set, seed %d, embedders %s, GOMAXPROCS %d\n\n",
		time.Now().UTC().Format(time.RFC3339), *noise, *seed, strings.Join(embs, ","), runtime.GOMAXPROCS(0))
	progress := newProgress(stderr, "build")
	var held []heldRow // the held-out figures of each set and model
	var swept [][]quality.SweepRow
	for _, s := range chosen {
		for _, e := range embs {
			cfg := quality.Config{Noise: *noise, Seed: *seed, Dir: filepath.Join(*dir, s.Name+"-"+e),
				Progress: func(_ string, done, total int) { progress(done, total) }}
			if e == "hash" {
				cfg.Embedder = embed.NewHashing(embed.DefaultDimension)
			} else {
				cfg.Train = func(ctx context.Context, texts []string) (nexus.Embedder, error) {
					return embed.TrainCooc(ctx, texts, embed.CoocOptions{Mix: *mix})
				}
			}
			if *sweep {
				for _, n := range sweepNoise(*noise) {
					cfg.Noise = n
					rows, err := sweepSet(ctx, s, cfg, stdout)
					if err != nil {
						return err
					}
					swept = append(swept, rows)
				}
				continue
			}
			rows, err := benchSet(ctx, s, cfg, *tune, stdout)
			if err != nil {
				return err
			}
			held = append(held, rows...)
		}
	}
	if *sweep {
		printSweepTotals(stdout, swept)
		return nil
	}
	if len(embs) > 1 {
		printHeldOut(stdout, held)
	}
	return nil
}

// heldRow is one set's held-out figures of one mode with one model.
type heldRow struct {
	set, model, mode string
	r                quality.Metrics
}

// benchSet builds the memory of one set with one embedder, prints its
// table and returns its held-out figures.
func benchSet(ctx context.Context, s *quality.Set, cfg quality.Config, tune bool, stdout io.Writer) ([]heldRow, error) {
	held := 0
	for i := range s.Questions {
		if quality.HeldOut(i) {
			held++
		}
	}
	t0 := time.Now()
	m, err := quality.Build(ctx, s, cfg)
	if err != nil {
		return nil, err
	}
	if tune {
		if err := printTune(ctx, m, stdout); err != nil {
			m.RemoveAll(cfg.Dir)
			return nil, err
		}
	}
	model := m.Engine.Model()
	fmt.Fprintf(stdout, "## %s — %d documents, %d questions (%d held out), model %s, built in %s\n\n",
		s.Name, len(s.Docs), len(s.Questions), held, model, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(stdout, "| split | mode | hit@1 | hit@5 | hit@10 | MRR@10 | nDCG@10 |\n|---|---|---:|---:|---:|---:|---:|\n")
	var out []heldRow
	for _, split := range []quality.Split{quality.HeldOutSplit, quality.Tune} {
		res, err := m.Evaluate(ctx, split, quality.Modes...)
		if err != nil {
			m.RemoveAll(cfg.Dir)
			return nil, err
		}
		for _, mode := range quality.Modes {
			r := res[mode]
			name := mode
			if mode == "bm25" {
				name = "plain BM25 (reference)"
			}
			fmt.Fprintf(stdout, "| %s | %s | %.3f | %.3f (%d/%d) | %.3f | %.3f | %.3f |\n",
				split, name, r.Hit1, r.Hit5, r.Hits5, r.N, r.Hit10, r.MRR, r.NDCG10)
			if split == quality.HeldOutSplit && (mode == "semantic" || mode == "hybrid") {
				out = append(out, heldRow{set: s.Name, model: model, mode: mode, r: *r})
			}
		}
	}
	fmt.Fprintln(stdout)
	return out, m.RemoveAll(cfg.Dir)
}

// printHeldOut sets the models side by side on each set's held-out
// questions: semantic and hybrid search, hit@5 and nDCG@10.
func printHeldOut(w io.Writer, rows []heldRow) {
	fmt.Fprintf(w, "## held-out questions, by model\n\n| set | mode | model | hit@5 | MRR@10 | nDCG@10 |\n|---|---|---|---:|---:|---:|\n")
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b heldRow) int {
		return strings.Compare(a.set+"\x00"+a.mode, b.set+"\x00"+b.mode)
	})
	for _, h := range sorted {
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %.3f | %.3f |\n", h.set, h.mode, h.model, h.r.Hits5, h.r.N, h.r.MRR, h.r.NDCG10)
	}
	fmt.Fprintln(w)
}

// tuneGrid is the grid of fusion weights --tune sweeps: both weights
// from 0 to 0.6 by 0.05, and first the small shares below 0.05 (shares
// that only order what keyword search scores alike or nearly so) for both
// kinds of query, then for queries in words only (exact names 0).
func tuneGrid() []search.Fusion {
	var out []search.Fusion
	small := []float64{0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04}
	for _, w := range small {
		out = append(out, search.Fusion{Semantic: w, Exact: w})
	}
	for _, w := range small {
		out = append(out, search.Fusion{Semantic: w})
	}
	for s := 0; s <= 12; s++ {
		for l := 0; l <= 12; l++ {
			out = append(out, search.Fusion{Semantic: float64(s) / 20, Exact: float64(l) / 20})
		}
	}
	return out
}

// printTune prints the tuning questions' figures of hybrid search for each
// weight of the grid, as TSV lines "tune set semantic exact hit@5 MRR@10
// ndcg@10 not-below-keyword", after the line of keyword search's figures
// ("tune set keyword - hit@5 MRR@10 ndcg@10"). not-below-keyword is
// whether hybrid search has at least keyword search's hit@5, MRR@10 and
// nDCG@10, which TestHybridNotBelowKeyword requires.
func printTune(ctx context.Context, m *quality.Memory, w io.Writer) error {
	kw, err := m.Evaluate(ctx, quality.Tune, "keyword")
	if err != nil {
		return err
	}
	k := kw["keyword"]
	fmt.Fprintf(w, "tune\t%s\tkeyword\t-\t%.4f\t%.4f\t%.4f\n", m.Set.Name, k.Hit5, k.MRR, k.NDCG10)
	grid := tuneGrid()
	res, err := m.Tune(ctx, quality.Tune, grid)
	if err != nil {
		return err
	}
	for i, f := range grid {
		r := res[i]
		notBelow := r.Hits5 >= k.Hits5 && r.MRR >= k.MRR && r.NDCG10 >= k.NDCG10
		fmt.Fprintf(w, "tune\t%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%v\n", m.Set.Name, f.Semantic, f.Exact, r.Hit5, r.MRR, r.NDCG10, notBelow)
	}
	return nil
}

// The grid of --sweep: BM25's k1 and b, and the hashing model's share for
// queries in words (exact names 0).
var (
	sweepK1     = []float64{0.9, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20}
	sweepB      = []float64{0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.75, 0.9}
	sweepShares = []float64{0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05}
)

// sweepNoise returns the noise sizes a sweep measures at: 300, the size
// of TestHybridNotBelowKeyword, and the run's.
func sweepNoise(noise int) []int {
	if noise == 300 {
		return []int{300}
	}
	return []int{300, noise}
}

// sweepSet builds the memory of one set and prints, for each setting of
// the sweep's grid, the tuning questions' figures of keyword and hybrid
// search as TSV lines "sweep set noise k1 b share kw-hits@5 kw-MRR@10
// kw-nDCG@10 hy-hits@5 hy-MRR@10 hy-nDCG@10 not-below-keyword".
func sweepSet(ctx context.Context, s *quality.Set, cfg quality.Config, stdout io.Writer) ([]quality.SweepRow, error) {
	m, err := quality.Build(ctx, s, cfg)
	if err != nil {
		return nil, err
	}
	rows, err := m.SweepKeyword(ctx, quality.Tune, sweepK1, sweepB, sweepShares)
	if err != nil {
		m.RemoveAll(cfg.Dir)
		return nil, err
	}
	for _, r := range rows {
		k, h := r.Keyword, r.Hybrid
		fmt.Fprintf(stdout, "sweep\t%s\t%d\t%g\t%g\t%g\t%d\t%.4f\t%.4f\t%d\t%.4f\t%.4f\t%v\n", s.Name, cfg.Noise, r.K1, r.B, r.Semantic,
			k.Hits5, k.MRR, k.NDCG10, h.Hits5, h.MRR, h.NDCG10, notBelow(h, k))
	}
	return rows, m.RemoveAll(cfg.Dir)
}

// notBelow reports whether hybrid search h has at least keyword search
// k's hit@5, MRR@10 and nDCG@10, as TestHybridNotBelowKeyword requires.
func notBelow(h, k quality.Metrics) bool {
	return h.Hits5 >= k.Hits5 && h.MRR >= k.MRR && h.NDCG10 >= k.NDCG10
}

// printSweepTotals prints, for each setting of the sweep, hybrid search's
// figures summed over the sets and noise sizes, "sweep-total k1 b share hits@5 MRR@10
// nDCG@10 not-below-keyword-on-every-set", then the setting with the
// highest hits@5 + MRR@10 + nDCG@10 among those not below keyword search
// on any set at any size ("sweep-best k1 b share sum"; ties to the
// earlier in the grid).
func printSweepTotals(w io.Writer, sets [][]quality.SweepRow) {
	if len(sets) == 0 {
		return
	}
	best, bestSum := -1, 0.0
	for i, r := range sets[0] {
		hits, mrr, ndcg, ok := 0, 0.0, 0.0, true
		for _, rows := range sets {
			h := rows[i].Hybrid
			hits, mrr, ndcg = hits+h.Hits5, mrr+h.MRR, ndcg+h.NDCG10
			ok = ok && notBelow(h, rows[i].Keyword)
		}
		fmt.Fprintf(w, "sweep-total\t%g\t%g\t%g\t%d\t%.4f\t%.4f\t%v\n", r.K1, r.B, r.Semantic, hits, mrr, ndcg, ok)
		if sum := float64(hits) + mrr + ndcg; ok && (best < 0 || sum > bestSum) {
			best, bestSum = i, sum
		}
	}
	if best >= 0 {
		r := sets[0][best]
		fmt.Fprintf(w, "sweep-best\t%g\t%g\t%g\t%.4f\n", r.K1, r.B, r.Semantic, bestSum)
	}
}
