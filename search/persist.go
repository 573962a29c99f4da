package search

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/durable"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/vector"
)

// The saved state: a manifest naming one generation of four files, each
// with its SHA-256 (a generation saved before the fresh segment had three:
// no fresh file is an empty fresh segment). Files of a generation are written and fsynced before
// the manifest that names them is renamed into place, so a crash leaves
// either the old or the new generation whole.
const (
	manifestFile    = "manifest.json"
	manifestVersion = 2 // 2: numbers in metadata hashes are canonical JSON values
	docsMagic       = "NXDOCS1\n"
	freshMagic      = "NXFRSH1\n"
)

type manifest struct {
	Version   int               `json:"version"`
	Model     string            `json:"model"`
	Dimension int               `json:"dimension"`
	Cursor    nexus.ID          `json:"cursor,omitzero"` // zero: an empty store
	Count     int               `json:"count"`
	Gen       int64             `json:"gen"`
	Files     map[string]string `json:"files"` // name → sha256 hex
}

// save writes the indexes if they changed since the last save. It holds
// stepMu, so the files agree with one another.
func (e *Engine) save() error {
	if e.opts.Dir == "" {
		return nil
	}
	e.stepMu.Lock()
	defer e.stepMu.Unlock()
	e.mu.RLock()
	if e.done == e.savedAt {
		e.mu.RUnlock()
		return nil
	}
	m := manifest{
		Version: manifestVersion, Model: e.emb.Model(), Dimension: e.emb.Dimension(),
		Cursor: e.cursor, Count: e.done, Files: map[string]string{},
	}
	docs := encodeDocs(e.tab, e.noVec)
	fresh := encodeFresh(e.emb.Dimension(), e.freshOrds, e.freshVecs)
	done := e.done
	e.mu.RUnlock()
	if err := os.MkdirAll(e.opts.Dir, 0o700); err != nil { // private, like every directory of the store
		return err
	}
	old, _ := readManifest(e.opts.Dir)
	m.Gen = 1
	if old != nil {
		m.Gen = old.Gen + 1
	}
	writers := map[string]func(io.Writer) error{
		"docs":    func(w io.Writer) error { _, err := w.Write(docs); return err },
		"vectors": func(w io.Writer) error { _, err := e.vec.WriteTo(w); return err },
		"keyword": func(w io.Writer) error { _, err := e.kw.WriteTo(w); return err },
		"fresh":   func(w io.Writer) error { _, err := w.Write(fresh); return err },
	}
	for kind, write := range writers {
		if e.opts.Seal != nil {
			write = sealed(e.opts.Seal, write)
		}
		name := fmt.Sprintf("%s-%d.bin", kind, m.Gen)
		sum, err := writeDurable(e.opts.Dir, name, write)
		if err != nil {
			return fmt.Errorf("save %s: %w", name, err)
		}
		m.Files[name] = sum
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if _, err := writeDurable(e.opts.Dir, manifestFile, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	if err := syncDir(e.opts.Dir); err != nil {
		return err
	}
	removeStale(e.opts.Dir, m.Files)
	e.mu.Lock()
	e.savedAt = done
	e.mu.Unlock()
	e.saved.Store(&m)
	e.fileDamage.Store(nil)
	return nil
}

// sealed makes a writer of the sealed form of what write writes.
func sealed(s Sealer, write func(io.Writer) error) func(io.Writer) error {
	return func(w io.Writer) error {
		var buf bytes.Buffer
		if err := write(&buf); err != nil {
			return err
		}
		_, err := w.Write(s.Seal(buf.Bytes()))
		return err
	}
}

// writeDurable writes dir/name through a fsynced temp file and returns the
// SHA-256 of what it wrote.
func writeDurable(dir, name string, write func(io.Writer) error) (string, error) {
	h := sha256.New()
	err := durable.WriteFile(dir, name, "tmp-*", (*os.File).Sync, func(f io.Writer) error { return write(io.MultiWriter(f, h)) })
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStale deletes files of other generations and temp files.
func removeStale(dir string, keep map[string]string) {
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		n := de.Name()
		if _, ok := keep[n]; ok || n == manifestFile {
			continue
		}
		if strings.HasSuffix(n, ".bin") || strings.HasPrefix(n, "tmp-") {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

func readManifest(dir string) (*manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return &m, nil
}

// load reads the saved indexes, checking every file against its SHA-256
// and the whole against the store. Any problem is an error; the caller
// then rebuilds.
func (e *Engine) load() error {
	if e.opts.Dir == "" {
		return e.reset()
	}
	m, err := readManifest(e.opts.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return e.reset()
	}
	if err != nil {
		return err
	}
	switch {
	case m.Version != manifestVersion:
		return fmt.Errorf("index version %d, want %d", m.Version, manifestVersion)
	case m.Model != e.emb.Model() || m.Dimension != e.emb.Dimension():
		return fmt.Errorf("index made with model %s/%d, configured %s/%d", m.Model, m.Dimension, e.emb.Model(), e.emb.Dimension())
	}
	files := map[string][]byte{}
	type sum struct{ kind, name, want string }
	var sums []sum // of the plain files, in order
	for _, kind := range []string{"docs", "vectors", "keyword", "fresh"} {
		name := fmt.Sprintf("%s-%d.bin", kind, m.Gen)
		want, ok := m.Files[name]
		if !ok && kind == "fresh" {
			continue // saved before the fresh segment: empty
		}
		if !ok {
			return fmt.Errorf("manifest lists no %s", name)
		}
		b, err := os.ReadFile(filepath.Join(e.opts.Dir, name))
		if err != nil {
			return err
		}
		if e.opts.Seal != nil {
			// Checked before it is opened.
			if err := checkBytes(name, b, want); err != nil {
				return err
			}
			if b, err = e.opts.Seal.Unseal(b); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		} else {
			sums = append(sums, sum{kind, name, want})
		}
		files[kind] = b
	}
	// Plain files are checked while they are decoded (the decoders refuse
	// malformed input; what they made of a file that fails its checksum is
	// dropped): at a million contexts the checksums of ≈ 2 GB took as long
	// as the decoding.
	checked := make(chan error, 1)
	go func() {
		for _, f := range sums {
			if err := checkBytes(f.name, files[f.kind], f.want); err != nil {
				checked <- err
				return
			}
		}
		checked <- nil
	}()
	tab, noVec, vec, kw, err := decodeFiles(files)
	if cerr := <-checked; cerr != nil {
		return cerr // the cause of any decoding error too
	}
	if err != nil {
		return err
	}
	var freshOrds []uint32
	var freshVecs [][]float32
	if b, ok := files["fresh"]; ok {
		if freshOrds, freshVecs, err = decodeFresh(b, e.emb.Dimension(), len(tab.docs)); err != nil {
			return fmt.Errorf("fresh: %w", err)
		}
	}
	for _, o := range freshOrds {
		if _, ok := vec.Vector(o); ok {
			return fmt.Errorf("doc %d is both in the graph and in the fresh segment", o)
		}
	}
	switch n := len(tab.docs); {
	case n != m.Count:
		return fmt.Errorf("docs hold %d contexts, manifest says %d", n, m.Count)
	case vec.Dim() != e.emb.Dimension():
		return fmt.Errorf("vectors have %d dimensions, want %d", vec.Dim(), e.emb.Dimension())
	case vec.Len()+len(freshOrds)+len(noVec) != n:
		return fmt.Errorf("%d vectors in the graph, %d fresh and %d waiting for %d contexts", vec.Len(), len(freshOrds), len(noVec), n)
	case n > 0 && tab.docs[n-1].id != m.Cursor:
		return fmt.Errorf("cursor %s is not the last context indexed", m.Cursor)
	case n > e.src.Len():
		return fmt.Errorf("index holds %d contexts, the store %d", n, e.src.Len())
	}
	if n := len(tab.docs); n > 0 {
		if _, err := e.src.Get(context.Background(), m.Cursor); err != nil {
			return fmt.Errorf("last indexed context %s is not in the store: %w", m.Cursor, err)
		}
	}
	e.mu.Lock()
	e.vec, e.kw, e.tab = vec, kw, tab
	e.cursor, e.done, e.noVec, e.savedAt = m.Cursor, len(tab.docs), noVec, len(tab.docs)
	e.freshOrds, e.freshVecs = freshOrds, freshVecs
	if len(noVec) > 0 {
		e.degraded = fmt.Sprintf("%d contexts were saved without an embedding", len(noVec))
	}
	e.mu.Unlock()
	e.saved.Store(m)
	return nil
}

// checkBytes checks file name's bytes b against the SHA-256 the manifest
// lists for it.
func checkBytes(name string, b []byte, want string) error {
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
		return fmt.Errorf("%s: checksum mismatch (damaged)", name)
	}
	return nil
}

// decodeFiles decodes the docs, vectors and keyword files of a saved
// index.
func decodeFiles(files map[string][]byte) (*table, []uint32, *vector.Index, *keyword.Index, error) {
	tab, noVec, err := decodeDocs(files["docs"])
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("docs: %w", err)
	}
	vec, err := vector.Read(bytes.NewReader(files["vectors"]))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("vectors: %w", err)
	}
	kw, err := keyword.Read(bytes.NewReader(files["keyword"]))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("keyword: %w", err)
	}
	return tab, noVec, vec, kw, nil
}

// encodeDocs serialises the table: strings, then fixed-size doc records
// with their metadata hashes, then the docs waiting for a vector.
func encodeDocs(t *table, noVec []uint32) []byte {
	b := []byte(docsMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.strs)))
	for _, s := range t.strs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.docs)))
	for _, d := range t.docs {
		b = append(b, d.id[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(d.ts))
		for _, x := range []uint32{d.ns, d.typ, d.agent, uint32(d.parent), d.root, uint32(len(d.meta))} {
			b = binary.LittleEndian.AppendUint32(b, x)
		}
		for _, h := range d.meta {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(noVec)))
	for _, o := range noVec {
		b = binary.LittleEndian.AppendUint32(b, o)
	}
	return b
}

// reader decodes little-endian fields, remembering the first short read.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) next(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return make([]byte, max(n, 0))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.next(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.next(8)) }

// count reads a length and checks that at least min bytes per item remain.
func (r *reader) count(per int) int {
	n := int(r.u32())
	if n*per > len(r.b) {
		r.bad = true
		return 0
	}
	return n
}

func decodeDocs(b []byte) (*table, []uint32, error) {
	if !bytes.HasPrefix(b, []byte(docsMagic)) {
		return nil, nil, errors.New("not a docs file")
	}
	r := &reader{b: b[len(docsMagic):]}
	t := newTable()
	for range r.count(4) {
		s := string(r.next(int(r.u32())))
		if r.bad {
			break
		}
		t.intern(s)
	}
	nd := r.count(16 + 8 + 24)
	t.docs = make([]doc, 0, nd)
	for i := range nd {
		var d doc
		copy(d.id[:], r.next(16))
		d.ts = int64(r.u64())
		d.ns, d.typ, d.agent = r.u32(), r.u32(), r.u32()
		d.parent, d.root = int32(r.u32()), r.u32()
		nm := r.count(8)
		if r.bad {
			break
		}
		if nm > 0 {
			d.meta = make([]uint64, nm)
			for j := range d.meta {
				d.meta[j] = r.u64()
			}
		}
		ns := uint32(len(t.strs))
		if d.ns >= ns || d.typ >= ns || d.agent >= ns || d.parent >= int32(i) || d.parent < -1 || d.root > uint32(i) {
			return nil, nil, fmt.Errorf("doc %d has references out of range", i)
		}
		t.docs = append(t.docs, d)
		t.byID[d.id] = uint32(i)
		t.post.add(uint32(i), &t.docs[i])
	}
	noVec := make([]uint32, r.count(4))
	for i := range noVec {
		if noVec[i] = r.u32(); int(noVec[i]) >= len(t.docs) {
			return nil, nil, fmt.Errorf("waiting doc %d out of range", noVec[i])
		}
	}
	if r.bad || len(r.b) != 0 {
		return nil, nil, errors.New("truncated or trailing bytes")
	}
	return t, noVec, nil
}

// encodeFresh serialises the fresh segment: the dimension and the count,
// then each doc's ordinal and vector.
func encodeFresh(dim int, ords []uint32, vecs [][]float32) []byte {
	b := make([]byte, 0, len(freshMagic)+8+len(ords)*(4+4*dim))
	b = append(b, freshMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ords)))
	for i, o := range ords {
		b = binary.LittleEndian.AppendUint32(b, o)
		for _, x := range vecs[i] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

// decodeFresh reads what encodeFresh wrote for vectors of dim components
// and docs numbered below docs: ordinals ascending, vectors finite.
func decodeFresh(b []byte, dim, docs int) ([]uint32, [][]float32, error) {
	if !bytes.HasPrefix(b, []byte(freshMagic)) {
		return nil, nil, errors.New("not a fresh segment file")
	}
	r := &reader{b: b[len(freshMagic):]}
	if d := int(r.u32()); !r.bad && d != dim {
		return nil, nil, fmt.Errorf("vectors of %d dimensions, want %d", d, dim)
	}
	n := r.count(4 + 4*dim)
	if r.bad {
		return nil, nil, errors.New("truncated")
	}
	var ords []uint32
	var vecs [][]float32
	if n > 0 {
		ords, vecs = make([]uint32, n), make([][]float32, n)
		flat := make([]float32, n*dim)
		for i := range n {
			ords[i] = r.u32()
			if int(ords[i]) >= docs || (i > 0 && ords[i] <= ords[i-1]) {
				return nil, nil, fmt.Errorf("doc %d out of range or out of order", ords[i])
			}
			v := flat[i*dim : (i+1)*dim : (i+1)*dim]
			for j := range v {
				v[j] = math.Float32frombits(r.u32())
			}
			if err := nexus.CheckVector(v, dim); err != nil {
				return nil, nil, fmt.Errorf("vector of doc %d: %s", ords[i], nexus.ErrorMessage(err))
			}
			vecs[i] = v
		}
	}
	if r.bad || len(r.b) != 0 {
		return nil, nil, errors.New("truncated or trailing bytes")
	}
	return ords, vecs, nil
}

// SavedModels lists the models whose index is saved under root (the
// Options.Dir of an engine), the index with the most contexts first.
func SavedModels(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var ms []*manifest
	for _, de := range ents {
		m, err := readManifest(filepath.Join(root, de.Name()))
		if err == nil && filepath.Join(root, de.Name()) == modelDir(root, m.Model) {
			ms = append(ms, m)
		}
	}
	slices.SortStableFunc(ms, func(a, b *manifest) int { return cmp.Compare(b.Count, a.Count) })
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Model
	}
	return out
}

// VerifySaved checks the index saved under root for emb's model against
// its checksums and against src, without serving it. No saved index is
// not an error (the next open builds one). seal opens sealed files (nil:
// they are in the clear).
func VerifySaved(src Source, emb nexus.Embedder, root string, seal Sealer) error {
	opts := Options{Seal: seal}
	opts.setDefaults()
	e, err := open(src, emb, opts, modelDir(root, emb.Model()))
	if err != nil {
		return err
	}
	return e.loadErr
}
