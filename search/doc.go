// Package search finds contexts by meaning and by words: it keeps a vector
// index (HNSW, package vector) and a keyword index (BM25, package keyword)
// of a store's contexts, fuses their rankings, and filters by namespace,
// type, agent, time, parent, thread and metadata.
//
// # Basics
//
// [Open] takes the store to index and an embedder. A background indexer
// follows the store: it lists the contexts written after the last one it
// indexed (ids are time-ordered, so the last id is a complete cursor),
// embeds them in batches and adds them to both indexes. Searches never
// wait for it unless they ask to ([nexus.SearchRequest.Consistent]); the
// number of contexts not yet indexed is reported as the index lag.
//
// Everything here is derived from the store and can be rebuilt from it.
// The indexes are saved under Options.Dir with a manifest holding the
// cursor, the embedding model and a SHA-256 of every file; on open they are
// verified, caught up from the cursor, or rebuilt when missing, damaged,
// made by another model, or ahead of the store.
//
// Hybrid search fuses the two signals' scores, each divided by the best of
// the search, by a weighted sum whose weight depends on the embedder model,
// on the query and on how much each signal tells its best candidates apart
// (see [Fusion]); a context first by both signals scores 1.
//
// # Caveats
//
// When the embedder fails (a remote provider is down), contexts are still
// indexed for keywords and their embedding is retried later; hybrid
// searches run on keywords alone and say so in Degraded, semantic searches
// fail with code unavailable.
//
// Filters that keep few contexts are answered by an exact scan of the
// kept vectors rather than the graph, so they never miss results.
package search
