package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
)

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validateCluster checks each field of the cluster section; the node
// checks them together with the flags (a node id given as a flag, a
// certificate for peer_tls).
func (d *decoder) validateCluster(c *Cluster) {
	if c.NodeID != "" && !nodeIDPattern.MatchString(c.NodeID) {
		d.errorf("cluster.node_id", "%q: want 1-64 of A-Z a-z 0-9 . _ -", c.NodeID)
	}
	for _, a := range []struct{ path, v string }{{"cluster.raft_addr", c.RaftAddr}, {"cluster.raft_advertise", c.RaftAdvertise}} {
		if a.v == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			d.errorf(a.path, "%q: want host:port", a.v)
		}
	}
	if c.APIURL != "" {
		d.apiURL("cluster.api_url", c.APIURL, "an http(s) URL")
	}
	for i, j := range c.Join {
		d.apiURL(fmt.Sprintf("cluster.join[%d]", i), j, "the http(s) URL of a member's API")
	}
	if c.Bootstrap && len(c.Join) > 0 {
		d.errorf("cluster.join", "a node either bootstraps a cluster or joins one, not both (bootstrap is true)")
	}
	switch c.Timeouts {
	case "", TimeoutsDefault, TimeoutsFast, TimeoutsRaft:
	default:
		d.errorf("cluster.timeouts", "%q: want default, fast or raft", c.Timeouts)
	}
}

// apiURL checks the URL of a node's API: http or https, a host, no
// credentials.
func (d *decoder) apiURL(path, v, want string) {
	u, err := url.Parse(v)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		d.errorf(path, "%q: want %s", v, want)
	case u.User != nil:
		d.errorf(path, "holds credentials: nodes authenticate with NEXUS_TOKEN, never with a password in the URL")
	}
}
