// Package keyword is the keyword index of Nexus: an in-memory BM25
// inverted index over the text of contexts.
//
// # Basics
//
// Documents are keyed by dense uint32 ordinals chosen by the caller (the
// store's catalog position of a context, say) and added one at a time:
//
//	x := keyword.New(keyword.Config{})
//	_ = x.Add(7, "Fix the login bug: bcrypt cost 12")
//	res, err := x.Search("login bcrypt", 10, keyword.Or, nil)
//
// Text is analyzed by an [Analyzer]: Unicode-aware lowercasing, words are
// runs of letters, digits and combining marks (Han and kana characters are
// one term each), possessive "'s" is dropped, tokens over [MaxTokenBytes]
// are dropped, and plain English words go through a light stemmer (Porter2
// steps 0–1c and 5: plurals, -ed, -ing, final -y, the final -e that sets a
// verb's forms apart: "parse", "parsing" → "pars"). Queries go through the same
// analyzer. A document's compound words — a change of case inside a word
// or letters joined to digits: "TrimSpace", "HTTPServer", "sha256" — are
// also indexed by their parts ("trim", "space"; "http", "server"; "sha",
// "256"), so a query in plain words finds the names made of them; the
// parts do not lengthen the document, and a query's words are searched as
// written ([Analyzer.Terms]). [Snippet] cuts an excerpt around the
// matched words.
//
// [Index.Search] ranks by BM25 (k1 = 12, b = 0.4, the idf of Lucene:
// ln(1 + (N − df + 0.5)/(df + 0.5))). [Or] queries are evaluated with
// MaxScore and per-block bounds, so common terms do not cost a pass over
// their postings; [And] queries walk the rarest term. A filter decides
// which documents may enter the results (namespace, type, time…). Every
// result says which query words it matched.
//
// [Index.WriteTo] and [Read] persist the index in a versioned binary format
// ending in a SHA-256 of the file; any damage is reported as [ErrCorrupt].
//
// # Caveats
//
// The index holds no text: snippets need the document from the store.
// Memory is 4 bytes per (term, document) pair (plus the slack of growing
// slices), about 120 bytes per distinct term, and 4 bytes per key up to
// the largest key, so keys should be dense: 100,000 synthetic documents of
// 280 bytes take about 40 MiB (docs/KEYWORD.md). English stop words are
// indexed and scored like any word. There are no phrase queries, no
// positions and no fuzzy matching. Languages written without spaces other
// than Chinese and Japanese (Thai, Khmer…) are indexed as whole runs,
// which are dropped past 64 bytes.
//
// A deleted document is tombstoned: it never appears in results, but its
// terms still count in the BM25 statistics (document count, average
// length, document frequencies) until [Index.Compact], which Delete runs
// when tombstones reach a quarter of the documents, and which WriteTo
// runs first. Search holds a read lock for its whole run and Add, Delete
// and Compact a write lock; the allow callback of Search must not call
// the index.
package keyword
