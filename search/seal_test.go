package search_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// indexFiles returns the bytes of every saved index file under dir.
func indexFiles(t *testing.T, dir string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.bin"))
	if len(files) != 4 { // docs, fresh, keyword, vectors
		t.Fatalf("index files: %v", files)
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// The saved index of an encrypted store is sealed with its data key: its
// terms are not on disk in the clear, and it loads back without a rebuild.
func TestEngine_SealedFiles(t *testing.T) {
	key := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600)
	for _, seal := range []bool{false, true} {
		opts := gitstore.Options{}
		if seal {
			opts.Encrypt = &gitstore.Encryption{KeyFile: key}
		}
		st, err := gitstore.Open(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		for _, c := range []string{"The quokka incident in the data center.", "Routine status about lunch."} {
			if _, err := st.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: c}); err != nil {
				t.Fatal(err)
			}
		}
		dir := t.TempDir()
		sopts := search.Options{Dir: dir}
		if seal {
			sopts.Seal = st.FileSealer()
		}
		e, err := search.Open(st, embed.NewHashing(64), sopts)
		if err != nil {
			t.Fatal(err)
		}
		mustSearch(t, e, nexus.SearchRequest{Query: "quokka"})
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if clear := bytes.Contains(indexFiles(t, dir), []byte("quokka")); clear == seal {
			t.Fatalf("sealed %v: the term is in the index files in the clear: %v", seal, clear)
		}
		r, err := search.Open(st, embed.NewHashing(64), sopts)
		if err != nil {
			t.Fatal(err)
		}
		if n := r.Indexed(); n != 2 {
			t.Fatalf("sealed %v: reopened index holds %d of 2 contexts before catching up", seal, n)
		}
		if res := mustSearch(t, r, nexus.SearchRequest{Query: "quokka", Mode: nexus.Keyword}); len(res.Hits) != 1 {
			t.Fatalf("sealed %v: %d hits after reload", seal, len(res.Hits))
		}
		r.Close()
	}
}
