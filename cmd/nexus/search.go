package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/node"
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
	level := consistencyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want a query")
	}
	client, err := cf.readClient(*level)
	if err != nil {
		return err
	}
	req.Query, req.Mode, req.Type = strings.Join(fs.Args(), " "), nexus.SearchMode(mode), nexus.Type(typ)
	if len(meta) > 0 {
		req.Metadata = meta
	}
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
	res, err := client.Search(ctx, req)
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

// indexDir is where the search indexes of a data directory live.
func indexDir(data string) string { return node.IndexDir(data) }

func runReindex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	keys := keyFlags(fs)
	embedder := fs.String("embedder", "", "the node's search.embedder: hash, or cooc (the newest learned model kept on refs/nexus/models/cooc; the built-in one while there is none); default: the model of the saved index when it is a learned one, else hash")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *embedder != "" && *embedder != "hash" && *embedder != "cooc" {
		return usagef("--embedder %q: want hash or cooc", *embedder)
	}
	if *embedder == "cooc" && os.Getenv("NEXUS_EMBED_URL") != "" {
		return usagef("--embedder cooc and NEXUS_EMBED_URL: choose one")
	}
	if err := needStore(*data); err != nil {
		return err
	}
	cfg, done, err := offlineConfig(ctx, *data, nil, keys, stderr)
	if err != nil {
		return err
	}
	cfg.Learned = *embedder == "cooc"
	if *embedder == "hash" && cfg.Embedder == nil {
		cfg.Embedder = embed.NewHashing(embed.DefaultDimension)
	}
	st, err := node.Reindex(ctx, cfg)
	done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "indexed %d contexts with %s (%d dimensions)\n", st.Indexed, st.Model, st.Dimension)
	return nil
}
