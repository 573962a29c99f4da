package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nexus-mem/nexus/config"
)

// FuzzParse: any bytes either load or are refused with positioned
// problems; the loader never panics and never accepts an invalid entry.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "docs", "nexus.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("agents:\n  - {id: a, provider: openai, model: m, timeout: 5}\n"))
	f.Add([]byte("x-a: &a {max: 1}\nagents:\n  - {id: a, provider: openai, model: m, retries: {<<: *a}}\n"))
	f.Add([]byte("supervisor:\n  processes:\n    - {name: p, command: x, max_log_size: 1KiB}\n"))
	f.Add([]byte("pools:\n  - {name: p, members: [{agent: a}]}\n"))
	f.Add([]byte("cluster: {node_id: n1, raft_addr: ':7412', bootstrap: true, timeouts: fast, peer_tls: false}\n"))
	f.Add([]byte("cluster:\n  node_id: n2\n  join: [http://127.0.0.1:7411, 'https://h:1']\n  api_url: http://127.0.0.1:7421\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- !!map\n? [a]\n: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a list of problems", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("problem without file or message: %+v", e)
				}
			}
			return
		}
		ids := map[string]bool{}
		for _, a := range c.Agents {
			if a.ID == "" || ids[a.ID] || a.Timeout <= 0 || a.Weight < 1 {
				t.Fatalf("accepted an invalid agent: %+v", a)
			}
			ids[a.ID] = true
		}
		for _, p := range c.Pools {
			for _, m := range p.Members {
				if !ids[m.Agent] || m.Weight < 1 {
					t.Fatalf("accepted a pool member that is not a valid agent: %+v", m)
				}
			}
		}
		if cl := c.Cluster; (cl.Bootstrap && len(cl.Join) > 0) || (cl.Timeouts != "" && cl.Timeouts != config.TimeoutsDefault && cl.Timeouts != config.TimeoutsFast && cl.Timeouts != config.TimeoutsRaft) {
			t.Fatalf("accepted an invalid cluster section: %+v", cl)
		}
		for _, p := range c.Supervisor.Processes {
			if p.Command == "" || p.Restart.Window <= 0 || p.MaxLogSize < 1024 {
				t.Fatalf("accepted an invalid process: %+v", p)
			}
		}
	})
}
