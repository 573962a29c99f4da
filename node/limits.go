package node

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-mem/nexus/httpapi"
)

// Limits bound what clients may take of a node. Each is named in the
// errors it causes and counted in /metrics (nexus_limit_refused_total).
// Zero means no limit, but for PageBytes (0: the default).
type Limits struct {
	// PageBytes bounds the contexts of one page of a listing, a chain or
	// the children of a context; a page ends early with a next_cursor.
	PageBytes int64
	// RateLimit is the requests per second of each principal (all
	// anonymous callers are one); RateBurst how many it may send at once
	// (0: RateLimit).
	RateLimit float64
	RateBurst int
	// MaxConnections bounds the open client connections; one over it is
	// answered 503 and closed.
	MaxConnections int
	// MaxStreams bounds the open event streams (503 beyond it);
	// MaxStreamsPerPrincipal those of one principal (429).
	MaxStreams, MaxStreamsPerPrincipal int
	// MaxExactContexts is the largest store an exact search may scan.
	MaxExactContexts int
}

// DefaultLimits are the limits of `nexus serve`.
func DefaultLimits() Limits {
	return Limits{
		PageBytes: httpapi.DefaultPageBytes, RateLimit: 1000, RateBurst: 2000,
		MaxConnections: 1024, MaxStreams: 256, MaxStreamsPerPrincipal: 64, MaxExactContexts: 100000,
	}
}

// validateWeb checks the public names and the limits.
func (c *Config) validateWeb() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, n := range c.PublicNames {
		if err := checkPublicName(n); err != nil {
			bad("PublicNames", "%q: %v", n, err)
		}
	}
	l := c.Limits
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"PageBytes", float64(l.PageBytes)}, {"RateLimit", l.RateLimit}, {"RateBurst", float64(l.RateBurst)},
		{"MaxConnections", float64(l.MaxConnections)}, {"MaxStreams", float64(l.MaxStreams)},
		{"MaxStreamsPerPrincipal", float64(l.MaxStreamsPerPrincipal)}, {"MaxExactContexts", float64(l.MaxExactContexts)},
	} {
		if f.v < 0 || f.v != f.v {
			bad("Limits."+f.name, "%v: must not be negative (0: no limit)", f.v)
		}
	}
	if l.MaxConnections > 0 && (l.MaxStreams == 0 || l.MaxStreams >= l.MaxConnections) {
		bad("Limits.MaxStreams", "%d: must be set below MaxConnections (%d), so that event streams leave connections for other requests", l.MaxStreams, l.MaxConnections)
	}
	return errs
}

// checkPublicName accepts a host name or IP address, with a port or not.
func checkPublicName(n string) error {
	host := n
	if h, port, err := net.SplitHostPort(n); err == nil {
		host = h
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return fmt.Errorf("port %q is not a number", port)
		}
	}
	if host == "" || strings.ContainsAny(host, "/@ \t*?#") || strings.Contains(host, "://") {
		return fmt.Errorf("want a host name, optionally with :port (no scheme, path or wildcard)")
	}
	return nil
}

// publicNames are the names requests may use as their Host beyond
// loopback: the configured ones, and the host of Addr when it is a name.
func (n *Node) publicNames() []string {
	names := append([]string(nil), n.cfg.PublicNames...)
	if host, _, err := net.SplitHostPort(n.cfg.Addr); err == nil && host != "" && net.ParseIP(host) == nil {
		names = append(names, host)
	}
	return names
}

// apiLimits are the node's limits as the API applies them.
func (l Limits) apiLimits() httpapi.Limits {
	return httpapi.Limits{
		PageBytes: l.PageBytes, Rate: l.RateLimit, Burst: l.RateBurst,
		Streams: l.MaxStreams, StreamsPerPrincipal: l.MaxStreamsPerPrincipal, ExactContexts: l.MaxExactContexts,
	}
}

// connLimiter caps the connections open at once on the listeners it
// wraps.
type connLimiter struct {
	max     int
	open    atomic.Int64
	refused atomic.Uint64
}

// wrap returns ln counting its connections, within the cap if any.
func (c *connLimiter) wrap(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, lim: c}
}

type limitListener struct {
	net.Listener
	lim *connLimiter
}

// Accept returns the next connection within the cap; one over it is
// answered 503 and closed, and Accept waits for the next.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.lim.open.Add(1); l.lim.max <= 0 || n <= int64(l.lim.max) {
			return &limitConn{Conn: conn, lim: l.lim}, nil
		}
		l.lim.open.Add(-1)
		l.lim.refused.Add(1)
		go refuseConn(conn, l.lim.max)
	}
}

// refuseConn reads the request's head (so that closing does not reset
// the connection before the client reads the answer), answers 503 and
// closes, all within a few seconds.
func refuseConn(conn net.Conn, max int) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
		return
	}
	body := fmt.Sprintf(`{"error":{"code":"unavailable","message":"the server holds %d connections, its limit (connections: --max-connections); retry later"}}`+"\n", max)
	fmt.Fprintf(conn, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// limitConn gives its slot back when it closes.
type limitConn struct {
	net.Conn
	lim  *connLimiter
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.lim.open.Add(-1) })
	return c.Conn.Close()
}

// limitCollector reports the limits' refusals and what is open.
type limitCollector struct {
	api           *httpapi.Server
	conns         *connLimiter
	refused       *prometheus.Desc
	streams, open *prometheus.Desc
	configured    *prometheus.Desc
	limits        Limits
}

func newLimitCollector(api *httpapi.Server, conns *connLimiter, l Limits) *limitCollector {
	return &limitCollector{api: api, conns: conns, limits: l,
		refused: prometheus.NewDesc("nexus_limit_refused_total",
			"Requests refused by each limit (page_bytes: pages cut short; connections: connections answered 503).", []string{"limit"}, nil),
		streams:    prometheus.NewDesc("nexus_event_streams", "Event streams open.", nil, nil),
		open:       prometheus.NewDesc("nexus_connections", "Client connections open.", nil, nil),
		configured: prometheus.NewDesc("nexus_limit", "The configured value of each limit (0: none).", []string{"limit"}, nil),
	}
}

func (c *limitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.refused
	ch <- c.streams
	ch <- c.open
	ch <- c.configured
}

func (c *limitCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.api.LimitStats()
	for _, name := range httpapi.LimitNames {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Refused[name]), name)
	}
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.conns.refused.Load()), "connections")
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(st.Streams))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(c.conns.open.Load()))
	l := c.limits
	for _, v := range []struct {
		name string
		v    float64
	}{
		{"page_bytes", float64(l.PageBytes)}, {"rate", l.RateLimit}, {"rate_burst", float64(l.RateBurst)},
		{"connections", float64(l.MaxConnections)}, {"streams", float64(l.MaxStreams)},
		{"streams_per_principal", float64(l.MaxStreamsPerPrincipal)}, {"exact", float64(l.MaxExactContexts)},
	} {
		ch <- prometheus.MustNewConstMetric(c.configured, prometheus.GaugeValue, v.v, v.name)
	}
}

// requestMetrics counts the API's requests by route and status and times
// them by route: nexus_http_requests_total and
// nexus_http_request_duration_seconds. Routes are the API's patterns, a
// bounded set; "none" is a request refused before a route took it.
type requestMetrics struct {
	total *prometheus.CounterVec
	took  *prometheus.HistogramVec
	// The series of each route and status, looked up once: a request
	// then counts without hashing its labels (the sets are bounded, as
	// the routes and statuses are).
	counters  sync.Map // routeCode → prometheus.Counter
	observers sync.Map // route → prometheus.Observer
}

type routeCode struct {
	route string
	code  int
}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	m := &requestMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nexus_http_requests_total",
			Help: "API requests answered, by route (the pattern that took it; none: refused before routing) and status."}, []string{"route", "code"}),
		took: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "nexus_http_request_duration_seconds",
			Help:    "Time to answer an API request, by route (an event stream: how long it stayed open).",
			Buckets: prometheus.ExponentialBucketsRange(0.0001, 30, 16)}, []string{"route"}),
	}
	reg.MustRegister(m.total, m.took)
	return m
}

func (m *requestMetrics) observe(route string, status int, took time.Duration) {
	if route == "" {
		route = "none"
	}
	k := routeCode{route, status}
	c, ok := m.counters.Load(k)
	if !ok {
		c, _ = m.counters.LoadOrStore(k, m.total.WithLabelValues(route, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	o, ok := m.observers.Load(route)
	if !ok {
		o, _ = m.observers.LoadOrStore(route, m.took.WithLabelValues(route))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
}
