// Package embed provides the implementations of [nexus.Embedder], which turn
// texts into vectors for similarity search.
//
// # Basics
//
// [Hashing] is the built-in default. It works offline, downloads nothing
// and costs microseconds per text: it hashes the words, pairs of adjacent
// words and character n-grams of a text into a fixed number of dimensions
// (384 by default) and scales the result to unit length.
//
//	e := embed.NewHashing(0) // model "nexus-hash-v1-384"
//	vecs, err := e.Embed(ctx, []string{"fix the login bug", "login bug fixed"})
//
// It is lexical, not a neural model: it matches shared words and word
// pieces, not meaning. Texts that use the same words score high; a
// paraphrase in other words scores low, and it knows no synonyms and no
// languages.
//
// [Cooc] is a built-in embedder learned from a memory's own texts
// ([TrainCooc]): word vectors from the co-occurrence statistics of the
// texts (positive PMI within a window, reduced by a seeded randomised SVD)
// next to the hashing features, so that words used in the same contexts
// come near each other. Its parameters are a few MB ([Cooc.MarshalBinary])
// and its model id is the hash of them. It is not the default: on the
// evaluation sets of docs/SEARCH.md it does not beat [Hashing] on the
// held-out questions (the figures are there).
//
// [OpenAI] sends the texts to any server that speaks the OpenAI
// embeddings API (POST /v1/embeddings): OpenAI, Ollama, vLLM, llama.cpp
// server, Hugging Face TEI. It batches, times out, retries transient
// failures with backoff and jitter honouring Retry-After, and stops calling
// a failing server for a while with a circuit breaker.
//
//	cfg, err := embed.OpenAIConfigFromEnv() // NEXUS_EMBED_URL, NEXUS_EMBED_MODEL, ...
//	e, err := embed.NewOpenAI(cfg)
//	dim, err := e.Probe(ctx) // checks the URL, model and key; learns the dimension
//
// With Ollama, for instance: NEXUS_EMBED_URL=http://localhost:11434 and
// NEXUS_EMBED_MODEL=nomic-embed-text.
//
// # Caveats
//
// Vectors of different models must never be compared: [nexus.Embedder.Model]
// tells them apart, and the hashing embedder's id includes its version and
// dimension, so a change of either is a change of model that requires
// embedding the stored texts again.
//
// Texts without content (empty or white space; for [Hashing], anything
// without a letter or digit) get the zero vector. It matches nothing — its
// dot product with every vector is 0 — and it is the one vector that is not
// of unit length, so code that divides by a vector's length must check for
// zero first.
//
// [OpenAI] sends texts as they are. A text longer than the model's context
// is cut short by some servers and rejected by others (an error with code
// invalid); split long texts before embedding them. [OpenAI.Dimension] is 0
// until the first response unless the configuration sets it: call
// [OpenAI.Probe] at startup. The API key is sent only in the Authorization
// header and is removed from every error message, even when the server
// quotes it back.
package embed
