package config_test

import (
	"reflect"
	"testing"

	"github.com/nexus-mem/nexus/config"
)

func TestConfig_Cluster(t *testing.T) {
	c := MustParse(t, `
cluster:
  node_id: n2
  raft_addr: 0.0.0.0:7412
  raft_advertise: 10.0.0.2:7412
  api_url: https://10.0.0.2:7411
  join: [https://10.0.0.1:7411, https://10.0.0.3:7411]
  timeouts: fast
  peer_tls: true
`)
	want := config.Cluster{
		NodeID: "n2", RaftAddr: "0.0.0.0:7412", RaftAdvertise: "10.0.0.2:7412", APIURL: "https://10.0.0.2:7411",
		Join: []string{"https://10.0.0.1:7411", "https://10.0.0.3:7411"}, Timeouts: config.TimeoutsFast, PeerTLS: true,
	}
	if !reflect.DeepEqual(c.Cluster, want) {
		t.Fatalf("cluster = %+v\nwant      %+v", c.Cluster, want)
	}
	if c := MustParse(t, "cluster: {node_id: n1, raft_addr: ':7412', bootstrap: true}\n"); !c.Cluster.Bootstrap || c.Cluster.Timeouts != "" {
		t.Fatalf("bootstrap: %+v", c.Cluster)
	}
}

func TestConfig_ClusterErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown field", "cluster:\n  peers: [a]\n",
			`nexus.yaml:2: cluster.peers: unknown field (known: api_url, bootstrap, join, node_id, peer_tls, raft_addr, raft_advertise, timeouts)`},
		{"bad node id", "cluster:\n  node_id: 'node one'\n",
			`nexus.yaml:2: cluster.node_id: "node one": want 1-64 of A-Z a-z 0-9 . _ -`},
		{"raft address without port", "cluster:\n  node_id: n1\n  raft_addr: 10.0.0.1\n",
			`nexus.yaml:3: cluster.raft_addr: "10.0.0.1": want host:port`},
		{"advertise without port", "cluster: {node_id: n1, raft_advertise: 'h:'}\n",
			`nexus.yaml:1: cluster.raft_advertise: "h:": want host:port`},
		{"join not a URL", "cluster:\n  node_id: n2\n  join:\n    - 10.0.0.1:7411\n",
			`nexus.yaml:4: cluster.join[0]: "10.0.0.1:7411": want the http(s) URL of a member's API`},
		{"join a single value", "cluster:\n  join: http://10.0.0.1:7411\n",
			`nexus.yaml:2: cluster.join: "http://10.0.0.1:7411" is not a list`},
		{"credentials in the API URL", "cluster:\n  api_url: http://u:p@10.0.0.1:7411\n",
			`nexus.yaml:2: cluster.api_url: holds credentials: nodes authenticate with NEXUS_TOKEN, never with a password in the URL`},
		{"bootstrap and join", "cluster:\n  node_id: n1\n  bootstrap: true\n  join: [http://10.0.0.2:7411]\n",
			`nexus.yaml:4: cluster.join: a node either bootstraps a cluster or joins one, not both (bootstrap is true)`},
		{"not a boolean", "cluster:\n  bootstrap: yes\n",
			`nexus.yaml:2: cluster.bootstrap: "yes" is not true or false`},
		{"unknown timeouts", "cluster:\n  timeouts: slow\n",
			`nexus.yaml:2: cluster.timeouts: "slow": want default, fast or raft`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("nexus.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted; want %s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
