package embed

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/nexus-mem/nexus"
)

// CoocOptions configure [TrainCooc]. Zero fields take the defaults.
type CoocOptions struct {
	// Dim is the dimension of the learned word vectors (default 128).
	Dim int
	// Window is how many words on each side of a word count as its
	// context (default 5); a neighbour d words away counts 1/d.
	Window int
	// MinCount drops words seen fewer times (default 3).
	MinCount int
	// MaxVocab keeps at most this many words, the most frequent (default
	// 50,000).
	MaxVocab int
	// Mix is the learned part's share of the similarity, in [0, 1]
	// (default 0.5): the cosine of two texts is (1−Mix)·hashing cosine +
	// Mix·learned cosine when both parts are non-zero.
	Mix float64
	// Hashing is the dimension of the hashed part (default
	// [DefaultDimension]).
	Hashing int
	// Seed seeds the random projection of the decomposition (default 1).
	Seed uint64
}

func (o *CoocOptions) setDefaults() {
	if o.Dim <= 0 {
		o.Dim = 128
	}
	if o.Window <= 0 {
		o.Window = 5
	}
	if o.MinCount <= 0 {
		o.MinCount = 3
	}
	if o.MaxVocab <= 0 {
		o.MaxVocab = 50_000
	}
	if o.Mix <= 0 || o.Mix > 1 {
		o.Mix = 0.5
	}
	if o.Hashing <= 0 {
		o.Hashing = DefaultDimension
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Cooc is a built-in embedder learned from a memory's own texts: the
// vector of a text is its [Hashing] vector (words and word pieces) next
// to the idf-weighted mean of learned word vectors, each part scaled so
// that the cosine of two texts mixes the two similarities. The word
// vectors come from the co-occurrence statistics of the training texts —
// positive pointwise mutual information of words within a window, reduced
// by a truncated singular value decomposition (randomised, seeded) — so
// words used in the same contexts get near vectors even when two texts
// share none of them.
//
// A model is fixed by its parameters: [Cooc.Model] is
// "nexus-cooc-v1-<dimension>-<hash>", the hash of [Cooc.MarshalBinary],
// so a retrained model is a new model whose vectors are never compared
// with the old one's. Training downloads nothing; the same texts and
// options give the same parameters. It is safe for concurrent use.
type Cooc struct {
	hash  *Hashing
	words map[string]int32
	vocab []string
	idf   []float32
	vecs  []float32 // len(vocab) rows of dim, unit length
	dim   int       // learned dimension
	mix   float64
	model string
}

var _ nexus.Embedder = (*Cooc)(nil)

// Model returns "nexus-cooc-v1-<dimension>-<first 12 hex digits of the
// SHA-256 of the parameters>".
func (c *Cooc) Model() string { return c.model }

// Dimension is the hashed dimension plus the learned one.
func (c *Cooc) Dimension() int { return c.hash.dim + c.dim }

// Vocabulary returns the number of words with a learned vector.
func (c *Cooc) Vocabulary() int { return len(c.vocab) }

// Embed returns one vector per text, in order.
func (c *Cooc) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	d := c.Dimension()
	backing := make([]float32, len(texts)*d)
	f := featurizers.Get().(*featurizer)
	defer f.release()
	acc := make([]float64, c.dim)
	hs, ls := float32(math.Sqrt(1-c.mix)), math.Sqrt(c.mix)
	for i, text := range texts {
		if err := ctx.Err(); err != nil {
			return nil, nexus.WrapError(nexus.EUnavailable, err, "embedding canceled")
		}
		v := backing[i*d : (i+1)*d : (i+1)*d]
		f.embed(text, v[:c.hash.dim]) // tokenizes into f.buf and f.words
		clear(acc)
		for _, w := range f.words {
			r, ok := c.words[string(f.buf[w.start:w.end])]
			if !ok {
				continue
			}
			wt := float64(c.idf[r])
			for j, x := range c.vecs[int(r)*c.dim : (int(r)+1)*c.dim] {
				acc[j] += wt * float64(x)
			}
		}
		var sum float64
		for _, x := range acc {
			sum += x * x
		}
		hashed := false
		for _, x := range v[:c.hash.dim] {
			if x != 0 {
				hashed = true
				break
			}
		}
		switch {
		case sum == 0:
			// Nothing learned about these words: the hashed part alone,
			// at unit length.
		case !hashed:
			inv := 1 / math.Sqrt(sum)
			for j, x := range acc {
				v[c.hash.dim+j] = float32(x * inv)
			}
		default:
			for j := range v[:c.hash.dim] {
				v[j] *= hs
			}
			inv := ls / math.Sqrt(sum)
			for j, x := range acc {
				v[c.hash.dim+j] = float32(x * inv)
			}
		}
		out[i] = v
	}
	return out, nil
}

// TrainCooc learns a [Cooc] embedder from texts. It fails when the texts
// have fewer distinct words of MinCount occurrences than twice the
// dimension (too little to learn from).
func TrainCooc(ctx context.Context, texts []string, opts CoocOptions) (*Cooc, error) {
	opts.setDefaults()
	f := featurizers.Get().(*featurizer)
	defer f.release()

	// Count words, in order of first appearance.
	index := map[string]int32{}
	var words []string
	var counts []int64
	for _, t := range texts {
		f.tokenize(t)
		for _, w := range f.words {
			b := f.buf[w.start:w.end]
			i, ok := index[string(b)]
			if !ok {
				i = int32(len(words))
				index[string(b)] = i
				words = append(words, string(b))
				counts = append(counts, 0)
			}
			counts[i]++
		}
	}
	order := make([]int32, 0, len(words))
	for i := range words {
		if counts[i] >= int64(opts.MinCount) {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(words[a], words[b])
	})
	order = order[:min(len(order), opts.MaxVocab)]
	if len(order) < 2*opts.Dim {
		return nil, nexus.Errorf(nexus.EInvalid, "too little text to learn from: %d words seen at least %d times, need %d", len(order), opts.MinCount, 2*opts.Dim)
	}
	c := &Cooc{hash: NewHashing(opts.Hashing), words: make(map[string]int32, len(order)), dim: opts.Dim, mix: opts.Mix}
	for r, i := range order {
		c.words[words[i]] = int32(r)
		c.vocab = append(c.vocab, words[i])
	}
	n := len(c.vocab)

	// Co-occurrences within the window, weighted 1/distance, and document
	// frequencies.
	pairs := map[uint64]float64{}
	df := make([]int, n)
	var rows []int32
	seen := map[int32]bool{}
	for _, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, nexus.WrapError(nexus.EUnavailable, err, "training canceled")
		}
		f.tokenize(t)
		rows = rows[:0]
		clear(seen)
		for _, w := range f.words {
			r, ok := c.words[string(f.buf[w.start:w.end])]
			if !ok {
				r = -1
			} else if !seen[r] {
				seen[r] = true
				df[r]++
			}
			rows = append(rows, r)
		}
		for i, a := range rows {
			if a < 0 {
				continue
			}
			for d := 1; d <= opts.Window && i+d < len(rows); d++ {
				b := rows[i+d]
				if b < 0 {
					continue
				}
				pairs[uint64(a)<<32|uint64(uint32(b))] += 1 / float64(d)
				pairs[uint64(b)<<32|uint64(uint32(a))] += 1 / float64(d)
			}
		}
	}
	c.idf = make([]float32, n)
	for r := range n {
		c.idf[r] = float32(math.Log(1 + float64(len(texts))/float64(max(df[r], 1))))
	}
	m := ppmi(pairs, n)
	u, err := truncatedSVD(ctx, m, n, opts.Dim, opts.Seed)
	if err != nil {
		return nil, err
	}
	c.vecs = u
	c.setModel()
	return c, nil
}

// csr is a sparse square matrix in compressed rows.
type csr struct {
	start []int // row r is cols[start[r]:start[r+1]]
	cols  []int32
	vals  []float64
}

// ppmi turns co-occurrence weights into positive pointwise mutual
// information, with the context distribution smoothed by the power 0.75.
func ppmi(pairs map[uint64]float64, n int) *csr {
	keys := make([]uint64, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	row := make([]float64, n)
	col := make([]float64, n)
	var total float64
	for _, k := range keys {
		v := pairs[k]
		row[k>>32] += v
		col[uint32(k)] += v
		total += v
	}
	var smooth float64
	for j := range col {
		col[j] = math.Pow(col[j], 0.75)
		smooth += col[j]
	}
	m := &csr{start: make([]int, n+1)}
	for _, k := range keys {
		i, j := int(k>>32), int(uint32(k))
		pmi := math.Log(pairs[k] * smooth / (row[i] * col[j]))
		if pmi <= 0 {
			continue
		}
		m.cols = append(m.cols, int32(j))
		m.vals = append(m.vals, pmi)
		m.start[i+1]++
	}
	for i := range n {
		m.start[i+1] += m.start[i]
	}
	return m
}

// mul returns m·x for x of n rows and k columns (row-major).
func (m *csr) mul(x []float64, k int) []float64 {
	n := len(m.start) - 1
	y := make([]float64, n*k)
	for i := range n {
		yi := y[i*k : (i+1)*k]
		for p := m.start[i]; p < m.start[i+1]; p++ {
			v := m.vals[p]
			xj := x[int(m.cols[p])*k : (int(m.cols[p])+1)*k]
			for c := range yi {
				yi[c] += v * xj[c]
			}
		}
	}
	return y
}

// mulT returns mᵀ·x.
func (m *csr) mulT(x []float64, k int) []float64 {
	n := len(m.start) - 1
	y := make([]float64, n*k)
	for i := range n {
		xi := x[i*k : (i+1)*k]
		for p := m.start[i]; p < m.start[i+1]; p++ {
			v := m.vals[p]
			yj := y[int(m.cols[p])*k : (int(m.cols[p])+1)*k]
			for c := range yj {
				yj[c] += v * xi[c]
			}
		}
	}
	return y
}

// truncatedSVD returns the rows of U·√Σ of the dim largest singular
// values of m (n×n), scaled to unit length, as float32: a randomised
// range finder with two power iterations, then the eigenvectors of the
// small projected matrix by cyclic Jacobi rotations.
func truncatedSVD(ctx context.Context, m *csr, n, dim int, seed uint64) ([]float32, error) {
	k := min(dim+16, n)
	r := rand.New(rand.NewPCG(seed, 0x737664)) // "svd"
	y := make([]float64, n*k)
	for i := range y {
		y[i] = r.NormFloat64()
	}
	q := m.mul(y, k)
	orthonormalize(q, n, k)
	for range 2 {
		if err := ctx.Err(); err != nil {
			return nil, nexus.WrapError(nexus.EUnavailable, err, "training canceled")
		}
		z := m.mulT(q, k)
		orthonormalize(z, n, k)
		q = m.mul(z, k)
		orthonormalize(q, n, k)
	}
	// B = Qᵀ·M is k×n; B·Bᵀ = Qᵀ·M·Mᵀ·Q is k×k.
	bt := m.mulT(q, k) // Mᵀ·Q = Bᵀ, n×k
	g := make([]float64, k*k)
	for i := range n {
		row := bt[i*k : (i+1)*k]
		for a := range k {
			for b := a; b < k; b++ {
				g[a*k+b] += row[a] * row[b]
			}
		}
	}
	for a := range k {
		for b := range a {
			g[a*k+b] = g[b*k+a]
		}
	}
	vals, vecs := jacobiEigen(g, k)
	idx := make([]int, k)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(vals[b], vals[a]) })
	// U = Q·W; word vectors U·√σ = U·λ^¼.
	out := make([]float32, n*dim)
	w := make([]float64, dim)
	for i := range n {
		qi := q[i*k : (i+1)*k]
		var sum float64
		for c := range dim {
			e := idx[c]
			var x float64
			for a := range k {
				x += qi[a] * vecs[a*k+e]
			}
			x *= math.Pow(max(vals[e], 0), 0.25)
			w[c] = x
			sum += x * x
		}
		if sum == 0 {
			continue
		}
		inv := 1 / math.Sqrt(sum)
		for c := range dim {
			out[i*dim+c] = float32(w[c] * inv)
		}
	}
	return out, nil
}

// orthonormalize makes the k columns of x (n×k, row-major) orthonormal by
// modified Gram-Schmidt, twice for accuracy; a column that vanishes is
// left zero. It works on a column-major copy, so that each column is
// contiguous; the arithmetic, and so the result, is the same.
func orthonormalize(x []float64, n, k int) {
	cols := make([]float64, n*k)
	for i := range n {
		for c, v := range x[i*k : (i+1)*k] {
			cols[c*n+i] = v
		}
	}
	for range 2 {
		for c := range k {
			cc := cols[c*n : (c+1)*n : (c+1)*n]
			for p := range c {
				cp := cols[p*n : (p+1)*n : (p+1)*n]
				var dot float64
				for i, v := range cc {
					dot += v * cp[i]
				}
				for i, v := range cp {
					cc[i] -= dot * v
				}
			}
			var sum float64
			for _, v := range cc {
				sum += v * v
			}
			if sum < 1e-300 {
				clear(cc)
				continue
			}
			inv := 1 / math.Sqrt(sum)
			for i := range cc {
				cc[i] *= inv
			}
		}
	}
	for i := range n {
		row := x[i*k : (i+1)*k]
		for c := range row {
			row[c] = cols[c*n+i]
		}
	}
}

// jacobiEigen returns the eigenvalues and eigenvectors (columns of a k×k
// row-major matrix) of the symmetric matrix a, which it overwrites.
func jacobiEigen(a []float64, k int) ([]float64, []float64) {
	v := make([]float64, k*k)
	for i := range k {
		v[i*k+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		var off float64
		for p := range k {
			for q := p + 1; q < k; q++ {
				off += a[p*k+q] * a[p*k+q]
			}
		}
		if off < 1e-22 {
			break
		}
		for p := range k {
			for q := p + 1; q < k; q++ {
				apq := a[p*k+q]
				if math.Abs(apq) < 1e-300 {
					continue
				}
				theta := (a[q*k+q] - a[p*k+p]) / (2 * apq)
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				cs := 1 / math.Sqrt(t*t+1)
				sn := t * cs
				for r := range k {
					arp, arq := a[r*k+p], a[r*k+q]
					a[r*k+p], a[r*k+q] = cs*arp-sn*arq, sn*arp+cs*arq
				}
				for r := range k {
					apr, aqr := a[p*k+r], a[q*k+r]
					a[p*k+r], a[q*k+r] = cs*apr-sn*aqr, sn*apr+cs*aqr
				}
				for r := range k {
					vrp, vrq := v[r*k+p], v[r*k+q]
					v[r*k+p], v[r*k+q] = cs*vrp-sn*vrq, sn*vrp+cs*vrq
				}
			}
		}
	}
	vals := make([]float64, k)
	for i := range k {
		vals[i] = a[i*k+i]
	}
	return vals, v
}

// coocMagic starts the binary form of a model.
const coocMagic = "NXCOOC1\x00"

// MarshalBinary returns the model's parameters: magic, hashed dimension,
// learned dimension, mix, vocabulary size, then per word its length, its
// bytes, its idf and its vector (float32, little endian).
func (c *Cooc) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(coocMagic)
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, uint32(c.hash.dim)))
	b.Write(le.AppendUint32(nil, uint32(c.dim)))
	b.Write(le.AppendUint64(nil, math.Float64bits(c.mix)))
	b.Write(le.AppendUint32(nil, uint32(len(c.vocab))))
	for r, w := range c.vocab {
		b.Write(le.AppendUint16(nil, uint16(len(w))))
		b.WriteString(w)
		b.Write(le.AppendUint32(nil, math.Float32bits(c.idf[r])))
		for _, x := range c.vecs[r*c.dim : (r+1)*c.dim] {
			b.Write(le.AppendUint32(nil, math.Float32bits(x)))
		}
	}
	return b.Bytes(), nil
}

// errCooc is the error of a damaged model.
var errCooc = errors.New("not a nexus-cooc-v1 model")

// UnmarshalCooc reads a model written by [Cooc.MarshalBinary].
func UnmarshalCooc(data []byte) (*Cooc, error) {
	le := binary.LittleEndian
	rest, ok := bytes.CutPrefix(data, []byte(coocMagic))
	if !ok || len(rest) < 20 {
		return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model")
	}
	hdim, dim := int(le.Uint32(rest)), int(le.Uint32(rest[4:]))
	mix := math.Float64frombits(le.Uint64(rest[8:]))
	n := int(le.Uint32(rest[16:]))
	rest = rest[20:]
	if hdim <= 0 || hdim > 1<<16 || dim <= 0 || dim > 1<<12 || !(mix > 0 && mix <= 1) || n > len(rest)/(2+4+4*dim) {
		return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model header")
	}
	c := &Cooc{hash: NewHashing(hdim), words: make(map[string]int32, n), dim: dim, mix: mix,
		vocab: make([]string, 0, n), idf: make([]float32, 0, n), vecs: make([]float32, 0, n*dim)}
	for r := range n {
		if len(rest) < 2 {
			return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model: truncated")
		}
		l := int(le.Uint16(rest))
		if len(rest) < 2+l+4+4*dim {
			return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model: truncated")
		}
		w := string(rest[2 : 2+l])
		if _, dup := c.words[w]; dup || l == 0 {
			return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model: empty or repeated word")
		}
		c.words[w] = int32(r)
		c.vocab = append(c.vocab, w)
		rest = rest[2+l:]
		c.idf = append(c.idf, math.Float32frombits(le.Uint32(rest)))
		rest = rest[4:]
		for j := range dim {
			c.vecs = append(c.vecs, math.Float32frombits(le.Uint32(rest[4*j:])))
		}
		rest = rest[4*dim:]
		if !finite(c.idf[r:]) || !finite(c.vecs[r*dim:]) {
			return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model: a weight is not a finite number")
		}
	}
	if len(rest) != 0 {
		return nil, nexus.WrapError(nexus.EInvalid, errCooc, "decode model: trailing bytes")
	}
	c.setModel()
	return c, nil
}

// finite reports whether every value of v is a finite number.
func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

func (c *Cooc) setModel() {
	b, _ := c.MarshalBinary()
	sum := sha256.Sum256(b)
	c.model = fmt.Sprintf("nexus-cooc-v1-%d-%s", c.Dimension(), hex.EncodeToString(sum[:6]))
}

// Local reports that the vectors are made here, from the text and the
// model's parameters alone: a search index does not keep them in the
// store's repository, since embedding a text again costs less
// (search.LocalEmbedder).
func (c *Cooc) Local() bool { return true }
