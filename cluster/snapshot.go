package cluster

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus-mem/nexus/gitstore"
)

// manifest is a snapshot as the state machine makes it: the head of main
// and the members. Bundle says a git bundle of main's history follows it
// in the snapshot's stream.
type manifest struct {
	Head    string            `json:"head"`
	Index   uint64            `json:"index"` // the last entry applied
	Members map[string]Member `json:"members"`
	Bundle  bool              `json:"bundle"`
}

// Persist writes the manifest alone: the repository already holds the
// history it names.
func (m *manifest) Persist(sink raft.SnapshotSink) error {
	if err := writeManifest(sink, m); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release does nothing: the manifest holds no resource.
func (m *manifest) Release() {}

// A snapshot's stream: the manifest's length (8 bytes, big endian), the
// manifest in JSON, then the bundle when it has one.
func writeManifest(w io.Writer, m *manifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readSnapshot(r io.Reader) (*manifest, io.Reader, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, nil, fmt.Errorf("snapshot header: %w", err)
	}
	size := binary.BigEndian.Uint64(n[:])
	if size > 64<<20 {
		return nil, nil, fmt.Errorf("snapshot manifest of %d bytes: damaged", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, nil, fmt.Errorf("snapshot manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("snapshot manifest: %w", err)
	}
	return &m, r, nil
}

// snapshots is the raft snapshot store of a node: each snapshot is a
// directory under dir with meta.json and state (the stream). A snapshot
// the node made holds a manifest only; Open adds the bundle of its history
// (made once, kept beside it) when raft sends it to a follower. A
// snapshot received from the leader holds its whole stream.
type snapshots struct {
	dir    string
	store  *gitstore.Store
	retain int
	mu     sync.Mutex // one bundle made at a time
	stats  *snapshotStats
}

// snapshotStats are the figures of the last snapshot sent and installed.
type snapshotStats struct {
	mu                     sync.Mutex
	bundleBytes            int64
	bundleTime             time.Duration
	installBytes           int64
	installTime            time.Duration
	sent, installed, taken int
}

func newSnapshots(dir string, store *gitstore.Store, retain int) (*snapshots, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Leftovers of a snapshot that was being written when the node stopped.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &snapshots{dir: dir, store: store, retain: retain, stats: &snapshotStats{}}, nil
}

// Create starts a snapshot.
func (s *snapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(s.dir, id+".tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(tmp, "state"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	meta := raft.SnapshotMeta{
		Version: version, ID: id, Index: index, Term: term,
		Configuration: configuration, ConfigurationIndex: configurationIndex,
	}
	return &sink{s: s, meta: meta, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// List returns the snapshots, newest first.
func (s *snapshots) List() ([]*raft.SnapshotMeta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []*raft.SnapshotMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			continue // damaged: never offered
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *raft.SnapshotMeta) int {
		if a.Term != b.Term {
			return cmp.Compare(b.Term, a.Term)
		}
		if a.Index != b.Index {
			return cmp.Compare(b.Index, a.Index)
		}
		return strings.Compare(b.ID, a.ID)
	})
	return out, nil
}

func (s *snapshots) readMeta(id string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, "meta.json"))
	if err != nil {
		return nil, err
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Open returns a snapshot's stream with its exact size. A manifest-only
// snapshot gets the bundle of its history first.
func (s *snapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, err := s.readMeta(id)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(s.dir, id)
	f, err := os.Open(filepath.Join(dir, "state"))
	if err != nil {
		return nil, nil, err
	}
	m, _, err := readSnapshot(f)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, "state")
	if !m.Bundle && m.Head != "" {
		if path, err = s.withBundle(dir, m); err != nil {
			return nil, nil, err
		}
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	meta.Size = st.Size()
	return meta, f, nil
}

// withBundle makes (once) the full stream of a manifest-only snapshot.
func (s *snapshots) withBundle(dir string, m *manifest) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	full := filepath.Join(dir, "full")
	if _, err := os.Stat(full); err == nil {
		return full, nil
	}
	head, err := gitstore.ParseHash(m.Head)
	if err != nil {
		return "", err
	}
	start := time.Now()
	bundle := filepath.Join(dir, "history.bundle")
	defer os.Remove(bundle)
	if err := s.store.WriteBundle(context.Background(), bundle, head); err != nil {
		return "", err
	}
	tmp := full + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	withB := *m
	withB.Bundle = true
	err = writeManifest(out, &withB)
	var n int64
	if err == nil {
		var in *os.File
		if in, err = os.Open(bundle); err == nil {
			n, err = io.Copy(out, in)
			in.Close()
		}
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, full); err != nil {
		return "", err
	}
	s.stats.mu.Lock()
	s.stats.bundleBytes, s.stats.bundleTime = n, time.Since(start)
	s.stats.sent++
	s.stats.mu.Unlock()
	return full, nil
}

// prune keeps the newest retain snapshots.
func (s *snapshots) prune() {
	list, err := s.List()
	if err != nil {
		return
	}
	for i, m := range list {
		if i >= s.retain {
			os.RemoveAll(filepath.Join(s.dir, m.ID))
		}
	}
}

// sink writes one snapshot into its temporary directory; Close makes it
// durable and visible.
type sink struct {
	s    *snapshots
	meta raft.SnapshotMeta
	tmp  string
	f    *os.File
	w    *bufio.Writer
	n    int64
	done bool
}

func (k *sink) ID() string { return k.meta.ID }

func (k *sink) Write(p []byte) (int, error) {
	n, err := k.w.Write(p)
	k.n += int64(n)
	return n, err
}

func (k *sink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.f.Close()
	return os.RemoveAll(k.tmp)
}

func (k *sink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	err := k.w.Flush()
	if err == nil {
		err = k.f.Sync()
	}
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		k.meta.Size = k.n
		err = writeJSON(filepath.Join(k.tmp, "meta.json"), k.meta)
	}
	if err == nil {
		err = os.Rename(k.tmp, filepath.Join(k.s.dir, k.meta.ID))
	}
	if err != nil {
		os.RemoveAll(k.tmp)
		return err
	}
	k.s.stats.mu.Lock()
	k.s.stats.taken++
	k.s.stats.mu.Unlock()
	k.s.prune()
	return nil
}
