package quality

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
	"github.com/nexus-mem/nexus/search"
)

// TestOldKeywordIndexIsRebuilt saves a memory's index, puts in place of
// its keyword file the same contexts in an older version of the keyword
// format — version 1, written by the analyzer before compound words had
// parts (no term "trim" for "TrimSpace"), and version 2, written before
// the stemmer's step 5 (keywordtest.FileV2) — with the manifest's checksum
// to match, and reopens the engine: the old file must be rebuilt from the
// store, not read, so that keyword search answers exactly like an index
// made now and finds strings.TrimSpace by "trim", and saves it in the
// version of now.
func TestOldKeywordIndexIsRebuilt(t *testing.T) {
	for _, v := range []struct {
		name string
		file func([]string) []byte
	}{{"version 1", keywordtest.FileV1}, {"version 2", keywordtest.FileV2}} {
		t.Run(v.name, func(t *testing.T) { testOldKeywordIndexIsRebuilt(t, v.file) })
	}
}

func testOldKeywordIndexIsRebuilt(t *testing.T, oldFile func([]string) []byte) {
	sets, err := Sets()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sets, func(s *Set) bool { return s.Name == "gostd" })
	s := &Set{Name: "gostd", Docs: sets[i].Docs[:300], Questions: sets[i].Questions}
	s.Docs = append(s.Docs, *docByID(t, sets[i], "strings.TrimSpace"))
	ctx := context.Background()
	dir := t.TempDir()
	emb := embed.NewHashing(embed.DefaultDimension)
	m, err := Build(ctx, s, Config{Noise: 200, Seed: 1, Embedder: emb, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Engine.Close(); err != nil { // saves the index
		t.Fatal(err)
	}
	if err := search.VerifySaved(m.Store, emb, filepath.Join(dir, "index"), nil); err != nil {
		t.Fatalf("the saved index does not verify: %v", err)
	}
	// One directory per model under the index directory.
	manifests, err := filepath.Glob(filepath.Join(dir, "index", "*", "manifest.json"))
	if err != nil || len(manifests) != 1 {
		t.Fatalf("saved manifests %q, %v; want one", manifests, err)
	}
	idx := filepath.Dir(manifests[0])
	b, err := os.ReadFile(manifests[0])
	if err != nil {
		t.Fatal(err)
	}
	var man map[string]any
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	files := man["files"].(map[string]any)
	name := fmt.Sprintf("keyword-%v.bin", man["gen"])
	if _, ok := files[name]; !ok {
		t.Fatalf("manifest %s names no %s", b, name)
	}
	// The contexts' ordinals in the index are their places in the store.
	old := oldFile(m.texts)
	if _, err := keyword.Read(bytes.NewReader(old)); !errors.Is(err, keyword.ErrVersion) {
		t.Fatalf("the old file reads with %v, want ErrVersion", err)
	}
	if err := os.WriteFile(filepath.Join(idx, name), old, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(old)
	files[name] = hex.EncodeToString(sum[:])
	if b, err = json.Marshal(man); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifests[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	// The engine refuses the saved index for the keyword file's version,
	// not for anything else about it.
	if err := search.VerifySaved(m.Store, emb, filepath.Join(dir, "index"), nil); !errors.Is(err, keyword.ErrVersion) {
		t.Fatalf("the saved index with an old keyword file verifies with %v, want ErrVersion", err)
	}
	e, err := search.Open(m.Store, emb, search.Options{Dir: filepath.Join(dir, "index"), MaxCPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.Engine = e
	defer m.Close()
	if err := e.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	fresh := keyword.New(keyword.Config{})
	for i, text := range m.texts {
		if err := fresh.Add(uint32(i), text); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(); err != nil { // saves the rebuilt index
		t.Fatal(err)
	}
	if err := search.VerifySaved(m.Store, emb, filepath.Join(dir, "index"), nil); err != nil {
		t.Fatalf("the rebuilt index does not verify: %v", err)
	}
	if e, err = search.Open(m.Store, emb, search.Options{Dir: filepath.Join(dir, "index"), MaxCPU: 1}); err != nil {
		t.Fatal(err)
	}
	m.Engine = e
	for _, q := range []string{"trim", "trim space", "read file", "reading files", "parsing", "sha checksum", s.Questions[0].Q} {
		res, err := e.Search(ctx, nexus.SearchRequest{Query: q, Mode: nexus.Keyword, Limit: 20})
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.Search(q, 20, keyword.Or, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got, wantLabels []string
		for _, h := range res.Hits {
			got = append(got, m.label[h.Context.ID]+"|"+h.Context.Content[:min(20, len(h.Context.Content))])
		}
		for _, r := range want {
			wantLabels = append(wantLabels, m.labels[r.Key]+"|"+m.texts[r.Key][:min(20, len(m.texts[r.Key]))])
		}
		if !slices.Equal(got, wantLabels) {
			t.Fatalf("%q: the reopened engine answers\n%q\nan index made now\n%q", q, got, wantLabels)
		}
		if q == "trim" && !slices.ContainsFunc(got, func(l string) bool { return l[:len("strings.TrimSpace|")] == "strings.TrimSpace|" }) {
			t.Fatalf("trim does not find strings.TrimSpace: %q", got)
		}
	}
}

func docByID(t *testing.T, s *Set, id string) *Doc {
	t.Helper()
	for i := range s.Docs {
		if s.Docs[i].ID == id {
			return &s.Docs[i]
		}
	}
	t.Fatalf("set %s has no document %s", s.Name, id)
	return nil
}
