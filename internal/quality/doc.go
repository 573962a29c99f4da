// Package quality measures how well search finds what a question asks for.
//
// It holds labelled evaluation sets (documents, questions written in other
// words than the documents, and the ids of the documents that answer each
// question; see data/README.md), makes a memory of each set's documents
// hidden among deterministic noise contexts drawn from the same
// vocabulary, indexes it with the search engine, and scores every search
// mode — keyword, semantic, hybrid — with hit@k, MRR and nDCG@10, next to
// a plain textbook BM25 computed in the same run over the same texts.
//
// Every third question of a set (the 3rd, 6th, …) is held out: fusion and
// embedder parameters are tuned on the other questions only, and the
// figures reported for the held-out ones say how the tuning generalises.
//
// [Memory.SweepKeyword] ranks the tuning questions with other BM25
// parameters and shares of the hashing model than the engine's, for
// `nexus bench quality --sweep`, which chose them.
//
// `nexus bench quality` prints the tables of docs/SEARCH.md; the package's
// test runs a CI-sized version and fails if hybrid search ranks worse than
// keyword search on any set.
package quality
