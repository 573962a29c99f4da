package node_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// BenchmarkServe_TLS is the cost of a request to the node (GET /livez)
// over plain HTTP and over TLS, in the same run: on a new connection each
// time (TCP, and for TLS a full handshake with an ECDSA P-256 certificate
// and the reread of the certificate files), and on a kept-alive one.
func BenchmarkServe_TLS(b *testing.B) {
	ca := tlstest.NewCA(b, "nexus bench CA")
	plainCfg := nodetest.Config(b)
	plainCfg.NoSearch = true
	plain := nodetest.Open(b, plainCfg)
	tlsCfg := nodetest.Config(b)
	tlsCfg.NoSearch = true
	tlsCfg.TLSCert, tlsCfg.TLSKey = ca.Server(b).Write(b, b.TempDir(), "server")
	secure := nodetest.Open(b, tlsCfg)

	for _, s := range []struct {
		name string
		url  string
	}{{"plain", plain.URL}, {"tls", secure.URL}} {
		for _, keep := range []bool{false, true} {
			name := s.name + "/new-connection"
			if keep {
				name = s.name + "/keep-alive"
			}
			b.Run(name, func(b *testing.B) {
				tr := &http.Transport{TLSClientConfig: tlsClient(ca, nil), DisableKeepAlives: !keep}
				defer tr.CloseIdleConnections()
				c := &http.Client{Transport: tr}
				for b.Loop() {
					resp, err := c.Get(s.url + "/livez")
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}
