package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
)

// Cluster is a node's part in a cluster, as the API serves it.
type Cluster interface {
	// Status is the cluster as this node sees it, each member's applied
	// index and head filled in by asking it (local: this node only).
	Status(ctx context.Context, local bool) cluster.Status
	Join(ctx context.Context, m cluster.Member) error
	Remove(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, to string) error
	// NodeID names this node; Leader the leader it knows ("" if none).
	NodeID() string
	Leader() (id, apiURL string)
	IsLeader() bool
	ReadBarrier(ctx context.Context, level cluster.Consistency) error
}

// Headers of a cluster's answers.
const (
	// HeaderConsistency is the consistency a read was served at.
	HeaderConsistency = "Nexus-Consistency"
	// HeaderStale is "true" on a read served by a node that knows no
	// leader: its data may be behind the cluster's.
	HeaderStale = "Nexus-Stale"
	// HeaderServedBy names the node that served the request.
	HeaderServedBy = "Nexus-Served-By"
	// headerForwardedBy names the follower that forwarded a request to
	// the leader; a forwarded request is never forwarded again.
	headerForwardedBy = "Nexus-Forwarded-By"
)

// DefaultConsistency is the level of a read that names none.
const DefaultConsistency = cluster.Leader

// routeClass says where a route is served in a cluster.
type routeClass int

const (
	classLocal routeClass = iota // on the node asked (health, metrics, events, its own checks)
	classRead                    // at the read's consistency: locally, or on the leader
	classWrite                   // on the leader: followers forward it
)

// clusterClass is the class of each route whose class is not local.
var clusterClass = map[string]routeClass{
	"POST /v1/contexts":                    classWrite,
	"GET /v1/contexts":                     classRead,
	"GET /v1/contexts/{id}":                classRead,
	"GET /v1/contexts/{id}/chain":          classRead,
	"GET /v1/contexts/{id}/children":       classRead,
	"GET /v1/contexts/{id}/related":        classRead,
	"POST /v1/search":                      classRead,
	"GET /v1/log":                          classRead,
	"GET /v1/incidents":                    classRead,
	"GET /v1/incidents/{id}":               classRead,
	"POST /v1/admin/restore":               classWrite,
	"POST /v1/agents":                      classWrite,
	"GET /v1/agents":                       classRead,
	"GET /v1/agents/{id}":                  classRead,
	"POST /v1/agents/{id}/heartbeat":       classWrite,
	"POST /v1/agents/{id}/process":         classWrite,
	"POST /v1/agents/process":              classWrite,
	"POST /v1/agents/{id}/generate":        classWrite,
	"POST /v1/agents/generate":             classWrite,
	"POST /v1/tasks":                       classWrite,
	"GET /v1/tasks":                        classRead,
	"GET /v1/tasks/{id}":                   classRead,
	"POST /v1/tasks/claim":                 classWrite,
	"POST /v1/tasks/{id}/complete":         classWrite,
	"POST /v1/tasks/{id}/fail":             classWrite,
	"POST /v1/cluster/join":                classWrite,
	"DELETE /v1/cluster/members/{id}":      classWrite,
	"POST /v1/cluster/transfer-leadership": classWrite,
	"/mcp":                                 classWrite, // its sessions and tools live on the leader
}

// ClusterRoute reports how a route is served in a cluster: "local",
// "read" or "write".
func ClusterRoute(pattern string) string {
	switch clusterClass[pattern] {
	case classRead:
		return "read"
	case classWrite:
		return "write"
	}
	return "local"
}

// inCluster routes a request of a cluster's node: a write on a follower
// goes to the leader (with the caller's credentials), a read at leader or
// linearizable consistency too; a linearizable read on the leader first
// confirms its leadership. It reports whether it answered.
func (s *Server) inCluster(w http.ResponseWriter, r *http.Request, pattern string) bool {
	c := s.cluster
	class := clusterClass[pattern]
	if pattern == "POST /v1/admin/recover" && r.URL.Query().Get("scope") == "cluster" {
		class = classWrite // the leader coordinates it
	}
	if class == classLocal {
		return false
	}
	level := cluster.Consistency("")
	if class == classRead {
		var err error
		q := r.URL.Query()
		if level, err = cluster.ParseConsistency(q.Get("consistency"), DefaultConsistency); err != nil {
			s.fail(w, r, err)
			return true
		}
		w.Header().Set(HeaderConsistency, string(level))
		if level == cluster.None {
			if id, _ := c.Leader(); id == "" {
				w.Header().Set(HeaderStale, "true")
			}
			return false
		}
	}
	if c.IsLeader() {
		if level == cluster.Linearizable {
			if err := c.ReadBarrier(r.Context(), level); err != nil {
				s.fail(w, r, err)
				return true
			}
		}
		return false
	}
	leader, api := c.Leader()
	if leader == "" || api == "" || r.Header.Get(headerForwardedBy) != "" {
		err := c.ReadBarrier(r.Context(), cluster.Leader) // the no_quorum error, naming the last leader
		if class == classRead && level == cluster.Leader && leader == "" {
			// Without a leader a read is still served, marked stale.
			w.Header().Set(HeaderConsistency, string(cluster.None))
			w.Header().Set(HeaderStale, "true")
			return false
		}
		if by := r.Header.Get(headerForwardedBy); by != "" {
			// Two nodes that each take the other for the leader must not
			// pass a request back and forth.
			err = nexus.Errorf(nexus.ENoQuorum, "node %s does not lead the cluster (the leader it knows: %q), and a request forwarded by %q is not forwarded again; nothing was done",
				c.NodeID(), leader, clip(by, 64))
		} else if err == nil {
			err = nexus.Errorf(nexus.ENoQuorum, "no leader to forward to")
		}
		s.fail(w, r, err)
		return true
	}
	s.forward(w, r, api)
	return true
}

// forward proxies r to the leader's API, credentials included (a
// session's as a bearer credential); the leader's answer says it served
// it. An answer that does not come (the leader is unreachable) is this
// node's error.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, api string) {
	target, err := url.Parse(api)
	if err != nil || target.Host == "" {
		s.fail(w, r, nexus.Errorf(nexus.EInternal, "the leader's API address %q is not a URL", api))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(headerForwardedBy, s.cluster.NodeID())
			// This node checked where the request came from; the leader,
			// under another host and port, would take this node's origin
			// for another site's.
			pr.Out.Header.Del("Origin")
			pr.Out.Header.Del("Sec-Fetch-Site")
			if sess, ok := sessionFrom(pr.In.Context()); ok {
				// The leader knows none of this node's sessions: the
				// session's credential goes as a bearer one, as a
				// client's own would.
				pr.Out.Header.Set("Authorization", "Bearer "+sess.cred)
				pr.Out.Header.Del("Cookie")
				pr.Out.Header.Del(HeaderCSRF)
			}
		},
		Transport: s.forwardTransport,
		ModifyResponse: func(resp *http.Response) error {
			// The leader's headers replace those this node set (who
			// served it, at what consistency), rather than adding to them.
			for k := range resp.Header {
				w.Header().Del(k)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			// Whether a forwarded write was made is unknown once it left;
			// one whose connection to the leader could not even be made
			// never left: nothing was written.
			code := nexus.EOutcomeUnknown
			var op *net.OpError
			switch {
			case r.Method == http.MethodGet:
				code = nexus.EUnavailable
			case errors.As(err, &op) && op.Op == "dial":
				code = nexus.ENoQuorum
			}
			s.fail(w, r, nexus.WrapError(code, err, "forwarding to the leader at %s failed", target.Host))
		},
	}
	proxy.ServeHTTP(w, r)
}

func (s *Server) clusterRoutes() {
	s.handle("GET /v1/cluster", s.clusterStatus)
	s.handle("POST /v1/cluster/join", s.clusterJoin)
	s.handle("DELETE /v1/cluster/members/{id}", s.clusterRemove)
	s.handle("POST /v1/cluster/transfer-leadership", s.clusterTransfer)
}

var errNoCluster = nexus.Errorf(nexus.ENotFound, "this node is not part of a cluster (start it with --node-id and --raft-addr)")

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, "local")
	if err != nil {
		return err
	}
	if s.cluster == nil {
		return errNoCluster
	}
	local := false
	switch q["local"] {
	case "", "false":
	case "true":
		local = true
	default:
		return nexus.Errorf(nexus.EInvalid, "local %q: want true or false", clip(q["local"], 20))
	}
	return s.writeClusterStatus(w, r, local)
}

// writeClusterStatus answers with the cluster's status as this node sees it.
func (s *Server) writeClusterStatus(w http.ResponseWriter, r *http.Request, local bool) error {
	st := s.cluster.Status(r.Context(), local)
	if st.Members == nil {
		st.Members = []cluster.MemberStatus{} // the configuration could not be read
	}
	return writeJSON(w, http.StatusOK, st)
}

var joinFields = []string{"id", "raft_addr", "api_url"}

func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request) error {
	if s.cluster == nil {
		return errNoCluster
	}
	var m cluster.Member
	if err := s.decodeBody(w, r, &m, joinFields); err != nil {
		return err
	}
	if err := checkMember(m); err != nil {
		return err
	}
	if err := s.cluster.Join(r.Context(), m); err != nil {
		return err
	}
	return s.writeClusterStatus(w, r, true)
}

func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNoCluster
	}
	if err := s.cluster.Remove(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return s.writeClusterStatus(w, r, true)
}

var transferFields = []string{"to"}

func (s *Server) clusterTransfer(w http.ResponseWriter, r *http.Request) error {
	if s.cluster == nil {
		return errNoCluster
	}
	var req struct {
		To string `json:"to"`
	}
	if err := s.decodeBody(w, r, &req, transferFields); err != nil {
		return err
	}
	if err := s.cluster.TransferLeadership(r.Context(), strings.TrimSpace(req.To)); err != nil {
		return err
	}
	return s.writeClusterStatus(w, r, true)
}

// checkMember refuses a joining node's description that its peers could
// not use: an id they cannot name it by, a raft address they cannot dial,
// an API address they cannot forward to.
func checkMember(m cluster.Member) error {
	if !validNodeID(m.ID) {
		return nexus.Errorf(nexus.EInvalid, "id %q: want 1-64 of A-Z a-z 0-9 . _ -", clip(m.ID, 80))
	}
	if host, port, err := net.SplitHostPort(m.RaftAddr); err != nil || host == "" || port == "" {
		return nexus.Errorf(nexus.EInvalid, "raft_addr %q: want host:port", clip(m.RaftAddr, 80))
	}
	if m.APIURL != "" {
		if u, err := url.Parse(m.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nexus.Errorf(nexus.EInvalid, "api_url %q: want an http(s) URL", clip(m.APIURL, 80))
		}
	}
	return nil
}

// validNodeID reports whether s can name a node: 1-64 of A-Z a-z 0-9 . _ -.
func validNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
