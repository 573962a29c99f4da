package nexus

import "context"

// Origin is where a call into a node came from when it came through the
// API: the client's address and the route it asked for. The audit log
// records it; calls made in-process carry none.
type Origin struct {
	RemoteAddr string // the client's host:port, as the server saw it
	Route      string // the route's pattern, such as "POST /v1/admin/restore"
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin ctx carries, if any.
func OriginFrom(ctx context.Context) (Origin, bool) {
	o, ok := ctx.Value(originKey{}).(Origin)
	return o, ok
}
