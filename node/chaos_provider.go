package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/netfault"
)

// The provider scenarios of `nexus chaos`: a node that opted in to chaos
// sends the requests of each of its HTTP agents (openai, anthropic) through
// a TCP proxy of its own on loopback (internal/netfault: toxiproxy as a
// library) that forwards every connection to the provider's host and port.
// Nothing changes on the way while no fault is on (TLS goes end to end:
// the proxy forwards bytes). provider_fail makes the proxy reset every
// connection of one agent at its first byte, provider_latency delays every
// byte both ways, for a while; the agent's heartbeats and calls meet the
// fault as they would meet a failing or slow provider.

// The provider chaos scenarios.
const (
	ChaosProviderFail    = "provider_fail"
	ChaosProviderLatency = "provider_latency"
)

// providerRoutes are the proxies of the node's HTTP agents.
type providerRoutes struct {
	net    *netfault.Network
	routes map[string]*providerRoute // by agent id
	// unrouted says, by agent id, why an HTTP agent is not behind a proxy.
	unrouted map[string]string
}

// providerRoute is one agent's proxy and what the scenarios need to know
// of the agent to be noticed.
type providerRoute struct {
	link     *netfault.Link
	upstream string        // host:port of the provider
	timeout  time.Duration // of one attempt
	beat     time.Duration // heartbeat interval; 0: none
	failures int           // heartbeat failures in a row that mark it unhealthy
}

// route puts the agent's provider behind a proxy of the node and returns
// the client that dials it; nil when the agent is not routed (a command
// agent; one that reaches its provider through an HTTP proxy).
func (na *nodeAgents) route(a config.Agent, c agent.Config) (*http.Client, error) {
	if na.cfg == nil || !na.cfg.Chaos.Enabled || (c.Provider != agent.OpenAI && c.Provider != agent.Anthropic) {
		return nil, nil
	}
	base := c.BaseURL
	if base == "" {
		base = map[agent.Kind]string{agent.OpenAI: agent.DefaultOpenAIURL, agent.Anthropic: agent.DefaultAnthropicURL}[c.Provider]
	}
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil || u.Hostname() == "" {
		return nil, nil // Validate reports it
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	upstream := net.JoinHostPort(u.Hostname(), port)
	if na.faults == nil {
		na.faults = &providerRoutes{net: netfault.New(errorsOnly(na.log)), routes: map[string]*providerRoute{}, unrouted: map[string]string{}}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if req, err := http.NewRequest(http.MethodGet, base, nil); err == nil {
		if p, err := tr.Proxy(req); err == nil && p != nil {
			na.faults.unrouted[a.ID] = "it reaches its provider through the HTTP proxy " + p.Redacted()
			return nil, nil
		}
	}
	link, err := na.faults.net.Link("provider-"+a.ID, upstream)
	if err != nil {
		return nil, fmt.Errorf("agent %s: the chaos proxy to its provider %s: %w", a.ID, upstream, err)
	}
	failures := a.Heartbeat.FailureThreshold
	if failures == 0 {
		failures = agent.DefaultHeartbeatFailures
	}
	timeout := a.Timeout
	if timeout == 0 {
		timeout = agent.DefaultTimeout
	}
	na.faults.routes[a.ID] = &providerRoute{link: link, upstream: upstream, timeout: timeout, beat: a.Heartbeat.Interval, failures: failures}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == upstream {
			addr = link.Addr()
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}, nil
}

// close stops the proxies.
func (p *providerRoutes) close() {
	if p != nil {
		p.net.Close()
	}
}

// providerUnavailable says why the provider scenarios cannot be injected
// into this node, or "".
func (n *Node) providerUnavailable() string {
	p := n.agents.faults
	if p == nil {
		return "the node has no agent with an HTTP provider (openai or anthropic) in its configuration file"
	}
	if len(p.routes) == 0 {
		var why []string
		for id, w := range p.unrouted {
			why = append(why, fmt.Sprintf("agent %s: %s", id, w))
		}
		sort.Strings(why)
		return "no agent's provider traffic goes through the node's chaos proxy: " + strings.Join(why, "; ")
	}
	if len(p.beating()) == 0 {
		return "no agent with an HTTP provider sends heartbeats (heartbeat.interval is 0): nothing calls its provider to notice a fault"
	}
	return ""
}

// beating lists the routed agents that send heartbeats, by id.
func (p *providerRoutes) beating() []string {
	var ids []string
	for id, r := range p.routes {
		if r.beat > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// chaosProvider makes one agent's provider fail (every connection reset)
// or slow (every byte delayed by delay both ways) for hold.
func (n *Node) chaosProvider(scenario string, params map[string]string, inj *httpapi.ChaosInjection) error {
	if n.cluster != nil && !n.cluster.IsLeader() {
		id, api := n.cluster.Leader()
		return nexus.Errorf(nexus.EConflict, "%s: this node does not lead (the leader is %q at %s): its agents' heartbeats run on the leader; send it there", scenario, id, api)
	}
	p := n.agents.faults
	ids := p.beating()
	id := ids[0]
	if v := params["agent"]; v != "" {
		if _, ok := p.routes[v]; !ok || p.routes[v].beat <= 0 {
			return nexus.Errorf(nexus.EInvalid, "%s: agent %q: want one of %s (an agent with an HTTP provider and heartbeats)", scenario, v, strings.Join(ids, ", "))
		}
		id = v
	}
	r := p.routes[id]
	delay := r.timeout
	if scenario == ChaosProviderLatency {
		if v := params["delay"]; v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > time.Minute {
				return nexus.Errorf(nexus.EInvalid, "%s: delay %q: want a duration between 0 and 1m", scenario, v)
			}
			delay = d
		}
	}
	// Long enough for the heartbeats to fail the threshold's number of
	// times (each waiting up to the timeout when the provider is slow).
	def := time.Duration(r.failures+1) * r.beat
	if scenario == ChaosProviderLatency {
		def = time.Duration(r.failures+1) * (r.beat + r.timeout)
	}
	hold, err := chaosHold(params, min(max(5*time.Second, def), chaosHoldMax))
	if err != nil {
		return err
	}
	until, err := n.holdFault(scenario, hold)
	if err != nil {
		return err
	}
	var f *netfault.Fault
	if scenario == ChaosProviderFail {
		f, err = r.link.Reset()
		inj.What = fmt.Sprintf("every connection of agent %s to its provider %s reset at its first byte, for %s", id, r.upstream, hold)
	} else {
		f, err = r.link.Latency(delay, 0)
		inj.What = fmt.Sprintf("every byte between agent %s and its provider %s delayed by %s each way, for %s", id, r.upstream, delay, hold)
		inj.Details["delay"] = delay.String()
		if 2*delay < r.timeout {
			inj.FoundBy = "none"
			inj.What += fmt.Sprintf(": a round trip stays under the agent's timeout (%s), no failure expected", r.timeout)
		}
	}
	if err != nil {
		n.releaseFault()
		return nexus.WrapError(nexus.EInternal, err, "%s: the chaos proxy of agent %s", scenario, id)
	}
	inj.InjectedAt, inj.Until = time.Now().UTC(), until.UTC()
	inj.Details["agent"], inj.Details["provider"], inj.Details["hold"] = id, r.upstream, hold.String()
	go n.chaosRelease(hold, scenario+": provider traffic of agent "+id+" restored", func() {
		if err := f.Remove(); err != nil {
			n.log.Error("chaos: the fault on the provider traffic could not be removed", "agent", id, "err", err)
		}
	})
	return nil
}

// errorsOnly is log with only its errors: the proxies log every
// connection they accept and close.
func errorsOnly(log *slog.Logger) *slog.Logger {
	return slog.New(minLevel{log.Handler(), slog.LevelError})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(g string) slog.Handler { return minLevel{h.Handler.WithGroup(g), h.min} }
