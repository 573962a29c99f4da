package search

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// VectorLog keeps embeddings in the store's repository so that a rebuild
// of the index never calls the embedder: gitstore's side refs are one
// (cmd/nexus adapts them). Segments are opaque to it.
type VectorLog interface {
	// Append durably adds a segment to the log called name.
	Append(ctx context.Context, name string, segment []byte) error
	// Walk calls fn with every segment of the log, newest first.
	Walk(ctx context.Context, name string, fn func(segment []byte) error) error
}

// LocalEmbedder is implemented by embedders that make a vector on this
// machine from the text alone, in microseconds, calling nothing else: the
// built-in models of package embed. An engine keeps no vector log for a
// model whose embedder reports Local, neither appending to it nor reading
// it: embedding a text again costs less than keeping its vector, which
// took more of the repository than the context itself and a third of the
// merger's work (docs/SEARCH.md, "Vectors of local models are not kept").
type LocalEmbedder interface {
	Local() bool
}

// vectorLogOf is the vector log an engine over emb uses: log, unless emb
// is local.
func vectorLogOf(emb nexus.Embedder, log VectorLog) VectorLog {
	if l, ok := emb.(LocalEmbedder); ok && l.Local() {
		return nil
	}
	return log
}

// LogName is the name of the vector log of a model: "embeddings/" and a
// readable slug of the model id with a hash of the exact id, so that any
// model id maps to a valid git ref name and two ids never share a log.
func LogName(model string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(model) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= 80 {
			break
		}
	}
	slug := strings.Trim(b.String(), ".-_")
	sum := sha256.Sum256([]byte(model))
	return "embeddings/" + slug + "-" + hex.EncodeToString(sum[:4])
}

const segMagic = "NXVEC1\n"

// encodeSegment lays out a batch of embeddings: magic, model id, dimension,
// count, then each context id followed by its vector (float32, little
// endian). Git's object hash covers its integrity.
func encodeSegment(model string, dim int, ids []nexus.ID, vecs [][]float32) []byte {
	b := make([]byte, 0, len(segMagic)+12+len(model)+len(ids)*(16+4*dim))
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(model)))
	b = append(b, model...)
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ids)))
	for i, id := range ids {
		b = append(b, id[:]...)
		for _, x := range vecs[i] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

// segmentHeader reads a segment's header: its model, dimension and
// number of embeddings, and a reader at its first record.
func segmentHeader(b []byte) (model string, dim, n int, r *reader, err error) {
	if !strings.HasPrefix(string(b[:min(len(b), len(segMagic))]), segMagic) {
		return "", 0, 0, nil, errors.New("not a vector segment")
	}
	r = &reader{b: b[len(segMagic):]}
	model = string(r.next(int(r.u32())))
	dim = int(r.u32())
	n = r.count(16 + 4*max(dim, 1))
	if r.bad {
		return "", 0, 0, nil, errors.New("truncated vector segment")
	}
	return model, dim, n, r, nil
}

// decodeSegment reads a segment, calling fn for each embedding; the vector
// passed to fn is freshly allocated.
func decodeSegment(b []byte, model string, dim int, fn func(id nexus.ID, v []float32)) error {
	m, d, n, r, err := segmentHeader(b)
	switch {
	case err != nil:
		return err
	case m != model || d != dim:
		return fmt.Errorf("segment of model %s/%d in the log of %s/%d", m, d, model, dim)
	case len(r.b) != n*(16+4*d):
		return fmt.Errorf("vector segment of %d embeddings has %d bytes of records", n, len(r.b))
	}
	for range n {
		var id nexus.ID
		copy(id[:], r.next(16))
		v := make([]float32, d)
		for j := range v {
			v[j] = math.Float32frombits(r.u32())
		}
		if nexus.CheckVector(v, d) == nil {
			fn(id, v)
		}
	}
	return nil
}

// loadKnown reads the model's vector log into memory for a rebuild.
func (e *Engine) loadKnown(ctx context.Context) (map[nexus.ID][]float32, error) {
	known := map[nexus.ID][]float32{}
	model, dim := e.emb.Model(), e.emb.Dimension()
	err := e.vlog.Walk(ctx, LogName(model), func(seg []byte) error {
		return decodeSegment(seg, model, dim, func(id nexus.ID, v []float32) {
			if _, dup := known[id]; !dup { // newest first: keep the latest
				known[id] = v
			}
		})
	})
	return known, err
}

// The vector log takes embeddings in segments of up to Options.LogSegment,
// or what Options.LogDelay gathered: each segment is a commit of its own
// (a pack, its fsyncs, a ref moved) made by the store's one writer between
// the group commits of durable writes, so one per batch indexed — a batch
// of one context under light load — cost the writes more than the
// segment's bytes. Embeddings still queued when the process dies are made
// again by the next rebuild, as when an append fails.
const (
	defaultLogSegment = 1024
	defaultLogDelay   = 2 * time.Second
)

// logVectors queues freshly made embeddings for the vector log, and
// appends the queue as one segment once it holds Options.LogSegment. The
// caller holds stepMu.
func (e *Engine) logVectors(ctx context.Context, ids []nexus.ID, vecs [][]float32) {
	if e.vlog == nil || len(ids) == 0 {
		return
	}
	if len(e.logIDs) == 0 {
		e.logSince = time.Now()
	}
	e.logIDs, e.logVecs = append(e.logIDs, ids...), append(e.logVecs, vecs...)
	if len(e.logIDs) >= e.opts.LogSegment {
		e.flushLog(ctx)
	}
}

// flushLogIfDue appends the queued embeddings once the oldest has waited
// Options.LogDelay.
func (e *Engine) flushLogIfDue(ctx context.Context) {
	if e.vlog == nil {
		return // a local model's engine queues nothing: no lock to take
	}
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	if len(e.logIDs) > 0 && time.Since(e.logSince) >= e.opts.LogDelay {
		e.flushLog(ctx)
	}
}

// flushLog appends the queued embeddings to the vector log as one
// segment. The caller holds stepMu.
func (e *Engine) flushLog(ctx context.Context) {
	if len(e.logIDs) == 0 {
		return
	}
	ids, vecs := e.logIDs, e.logVecs
	e.logIDs, e.logVecs = nil, nil
	seg := encodeSegment(e.emb.Model(), e.emb.Dimension(), ids, vecs)
	if err := e.vlog.Append(ctx, LogName(e.emb.Model()), seg); err != nil {
		e.logFailures.Add(int64(len(ids)))
		e.log.Warn("keeping embeddings in git failed; a rebuild will embed these again", "contexts", len(ids), "err", err)
	}
}
