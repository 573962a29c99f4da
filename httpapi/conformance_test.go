package httpapi_test

import (
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/storetest"
)

// The client, through a server, is a store like any other.
func TestClient_conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) nexus.Store {
		return newClient(t, storetest.NewMemStore())
	})
}

// The same holds when the server reads single contexts as raw JSON.
func TestClient_conformanceRaw(t *testing.T) {
	storetest.Run(t, func(t *testing.T) nexus.Store {
		return newClient(t, &rawStore{MemStore: storetest.NewMemStore()})
	})
}

// And when the store is the real one on disk, whose Get goes through its
// GetRaw fast path, with its default limits.
func TestClient_conformanceDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T) nexus.Store {
		st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := st.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return newClient(t, st)
	})
}
