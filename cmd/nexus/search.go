package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("search", stderr)
	var req nexus.SearchRequest
	var mode, typ, parent, thread, since, until, asOf string
	fs.StringVar(&mode, "mode", "hybrid", "hybrid, semantic or keyword")
	fs.IntVar(&req.Limit, "limit", nexus.DefaultSearchLimit, "most hits")
	fs.StringVar(&req.Namespace, "ns", "", "namespace")
	fs.StringVar(&typ, "type", "", "type")
	fs.StringVar(&req.AgentID, "agent", "", "agent id")
	fs.StringVar(&parent, "parent", "", "children of this context")
	fs.StringVar(&thread, "thread", "", "contexts of the thread this context belongs to")
	fs.StringVar(&since, "since", "", "from this time (RFC 3339), inclusive")
	fs.StringVar(&until, "until", "", "before this time (RFC 3339)")
	fs.StringVar(&asOf, "as-of", "", "search the memory as it was at this time (RFC 3339)")
	fs.Float64Var(&req.MinScore, "min-score", 0, "drop hits scoring below this")
	fs.BoolVar(&req.Consistent, "consistent", false, "wait until every stored context is indexed")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata key=value that must match (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want a query")
	}
	req.Query, req.Mode, req.Type = strings.Join(fs.Args(), " "), nexus.SearchMode(mode), nexus.Type(typ)
	if len(meta) > 0 {
		req.Metadata = meta
	}
	var err error
	for _, p := range []struct {
		name, v string
		dst     *nexus.ID
	}{{"parent", parent, &req.ParentID}, {"thread", thread, &req.ThreadID}} {
		if p.v != "" {
			if *p.dst, err = nexus.ParseID(p.v); err != nil {
				return usagef("--%s: %s", p.name, nexus.ErrorMessage(err))
			}
		}
	}
	if req.Since, err = parseTime("since", since); err != nil {
		return err
	}
	if req.Until, err = parseTime("until", until); err != nil {
		return err
	}
	if req.AsOf, err = parseTime("as-of", asOf); err != nil {
		return err
	}
	res, err := cf.client().Search(ctx, req)
	if err != nil {
		return err
	}
	return printHits(stdout, res, cf.json)
}

func runRelated(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("related", stderr)
	var req nexus.SearchRequest
	fs.IntVar(&req.Limit, "limit", nexus.DefaultSearchLimit, "most contexts")
	fs.Float64Var(&req.MinScore, "min-score", 0.3, "least cosine similarity")
	fs.StringVar(&req.Namespace, "ns", "", "namespace")
	if err := parse(fs, args); err != nil {
		return err
	}
	id, err := oneID(fs)
	if err != nil {
		return err
	}
	res, err := cf.client().Related(ctx, id, req)
	if err != nil {
		return err
	}
	return printHits(stdout, res, cf.json)
}

func printHits(w io.Writer, res *nexus.SearchResult, asJSON bool) error {
	if asJSON {
		return printJSON(w, res)
	}
	if res.Degraded != "" {
		fmt.Fprintf(w, "note: %s\n", res.Degraded)
	}
	for _, h := range res.Hits {
		fmt.Fprintf(w, "%.4f %s [%s]\n    %s\n", h.Score, oneLine(h.Context), strings.Join(h.Matched, "+"), h.Snippet)
	}
	fmt.Fprintf(w, "-- %d hits in %.2f ms (index lag %d)\n", len(res.Hits), res.TookMS, res.IndexLag)
	return nil
}

// newEmbedder returns the embedder the environment configures: an
// OpenAI-compatible endpoint when NEXUS_EMBED_URL is set, else the
// built-in hashing embedder (lexical, offline).
func newEmbedder(ctx context.Context) (nexus.Embedder, error) {
	if os.Getenv("NEXUS_EMBED_URL") == "" {
		return embed.NewHashing(embed.DefaultDimension), nil
	}
	cfg, err := embed.OpenAIConfigFromEnv()
	if err != nil {
		return nil, err
	}
	o, err := embed.NewOpenAI(cfg)
	if err != nil {
		return nil, err
	}
	if o.Dimension() == 0 {
		if _, err := o.Probe(ctx); err != nil {
			return nil, fmt.Errorf("the embedding endpoint did not answer, so its dimension is unknown: set NEXUS_EMBED_DIM or start it first: %w", err)
		}
	}
	return o, nil
}

// resolveEmbedder makes the embedder of a model other than the configured
// one when it can: the built-in hashing models of any dimension. After a
// model change, the previous index then serves until the new one is built.
func resolveEmbedder(model string) (nexus.Embedder, bool) {
	d, ok := strings.CutPrefix(model, "nexus-hash-v1-")
	if !ok {
		return nil, false
	}
	n, err := strconv.Atoi(d)
	if err != nil || n <= 0 || n > 1<<16 {
		return nil, false
	}
	h := embed.NewHashing(n)
	return h, h.Model() == model
}

// indexDir is where the search indexes of a data directory live.
func indexDir(data string) string { return filepath.Join(data, "index") }

func runReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := needStore(*data); err != nil {
		return err
	}
	emb, err := newEmbedder(ctx)
	if err != nil {
		return err
	}
	catalog := startProgress(stderr, "catalog")
	store, err := gitstore.Open(*data, gitstore.Options{Progress: catalog.report})
	catalog.finish()
	if err != nil {
		return err
	}
	defer store.Close()
	if err := os.RemoveAll(indexDir(*data)); err != nil {
		return err
	}
	e, err := search.Open(store, emb, search.Options{Dir: indexDir(*data), Log: store.SideLog()})
	if err != nil {
		return err
	}
	index := startProgress(stderr, "index")
	err = e.CatchUp(ctx, index.report)
	index.finish()
	if err != nil {
		e.Close()
		return err
	}
	if err := e.Close(); err != nil {
		return err
	}
	st := e.Stats()
	fmt.Fprintf(stdout, "indexed %d contexts with %s (%d dimensions)\n", st.Indexed, st.Model, st.Dimension)
	return nil
}
