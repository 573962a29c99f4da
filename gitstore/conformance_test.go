package gitstore_test

import (
	"net/http/httptest"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

const suiteMaxContent = 64 << 10

// The conformance suite runs against the on-disk store directly and
// behind the HTTP server, through the HTTP client.
func TestConformance(t *testing.T) {
	open := func(t *testing.T) *gitstore.Store {
		return MustOpen(t, "", gitstore.Options{MaxContent: suiteMaxContent})
	}
	t.Run("disk", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) nexus.Store { return open(t) }, storetest.MaxContent(suiteMaxContent))
	})
	t.Run("disk-encrypted", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) nexus.Store {
			return MustOpen(t, "", gitstore.Options{MaxContent: suiteMaxContent, Encrypt: &gitstore.Encryption{KeyFile: keyFile(t)}})
		}, storetest.MaxContent(suiteMaxContent))
	})
	t.Run("http", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) nexus.Store {
			srv := httptest.NewServer(httpapi.NewServer(open(t), httpapi.Options{}))
			t.Cleanup(srv.Close)
			return httpapi.NewClient(srv.URL)
		}, storetest.MaxContent(suiteMaxContent))
	})
}
