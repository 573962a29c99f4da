// Package vector is the approximate nearest-neighbour index behind Nexus's
// semantic search: an HNSW graph (hierarchical navigable small world) over
// float32 vectors, with exact brute-force search beside it.
//
// # Basics
//
// [New] makes an empty [Index] for vectors of a fixed dimension; [Options]
// tune the graph, and zero fields take the defaults of [DefaultOptions].
// [Index.Add] stores a vector under a uint32 key chosen by the caller (the
// search engine uses dense ordinals). Add is safe to call from several
// goroutines at once and while searches run: each node's neighbour lists
// have their own mutex, so a build on two cores goes nearly twice as fast
// as on one.
//
// [Index.Search] returns the k keys whose vectors have the highest dot
// product with the query, best first. Vectors should be normalised to unit
// length, as most embedding models return them; the score is then the
// cosine similarity. An allow function restricts the results (to a
// namespace, a type, a time range); a filtered search keeps walking the
// graph until it has found enough allowed vectors, and returns k of them
// whenever k exist. [Index.Exact] scores every vector and is the reference
// that recall is measured against; it is also the fast path when the
// caller knows that a filter keeps only a few vectors.
//
// [Index.WriteTo] and [Read] save and load the whole index, graph
// included, in a versioned little-endian format that ends with a SHA-256
// of every byte before it.
//
// # Caveats
//
// There is no deletion: an updated or removed vector is handled by the
// caller (filter it out, and rebuild the index now and then). A key can be
// added once.
//
// HNSW is approximate. With the defaults, recall@10 on clustered
// 384-dimensional data is about 0.99; a larger efSearch ([Index.SearchEf])
// buys recall with latency. Scores are plain dot products: vectors that are
// not normalised are searched by inner product, for which the graph is
// built less well.
//
// Memory is about 4·dim + 8·M + 50 bytes per vector (1.8 KB at 384
// dimensions and M 24), all of it on the Go heap. A search that runs
// concurrently with Add calls may or may not see the vectors being added;
// Len counts those whose Add has returned.
//
// [Read] refuses, with [ErrCorrupt] in the error chain, any input that is
// truncated, altered or followed by extra bytes, and it checks the
// structure of the graph as well as the checksum, so a damaged or hostile
// file never produces an index that could misbehave. Its memory grows with
// the bytes actually read, not with the sizes a header claims.
//
// On amd64 processors with AVX2 and FMA, dot products run in assembly,
// eight to nine times faster than the portable unrolled loop used
// elsewhere.
package vector
