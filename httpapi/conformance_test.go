package httpapi_test

import (
	"testing"

	"github.com/nexus-mem/nexus"
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
