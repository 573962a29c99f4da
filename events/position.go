package events

import (
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
)

// position is a point in the stream: every context up to ctx (in id order,
// which is commit order) and every mark up to number mark come before it.
// Marks are the events that are not contexts (restores, published events);
// they are numbered 1, 2, 3… from a base taken from the clock when the bus
// starts, so numbers of one process never reappear in a later one.
type position struct {
	ctx  nexus.ID // zero: before every context
	mark uint64
	// implied is set for a bare context id, whose mark number the bus works
	// out from the marks it holds.
	implied bool
}

// maxIDLen bounds an event id; the longest is 26 + 1 + 20 characters.
const maxIDLen = 64

// String returns the position as an event id: a bare context id when the
// mark number is implied, else "<context id>.<mark>" ("0" for the zero
// context id).
func (p position) String() string {
	if p.implied {
		return p.ctx.String()
	}
	c := "0"
	if !p.ctx.IsZero() {
		c = p.ctx.String()
	}
	return c + "." + strconv.FormatUint(p.mark, 10)
}

// parsePosition parses an event id given back by a subscriber (the
// Last-Event-ID header). Every failure is an EInvalid error.
func parsePosition(s string) (position, error) {
	bad := func(why string) (position, error) {
		return position{}, nexus.Errorf(nexus.EInvalid, "invalid last event id %q: %s; want the id of an event this stream sent, such as 01KB2W3G6T0Q5A9QYQ7M3N8C2D or 01KB2W3G6T0Q5A9QYQ7M3N8C2D.1764251773123456", clip(s, 60), why)
	}
	if len(s) > maxIDLen {
		return bad("too long")
	}
	c, m, explicit := strings.Cut(s, ".")
	var p position
	if !explicit {
		id, err := nexus.ParseID(c)
		if err != nil {
			return bad("not a context id")
		}
		return position{ctx: id, implied: true}, nil
	}
	if c != "0" {
		id, err := nexus.ParseID(c)
		if err != nil {
			return bad("the part before the dot is not a context id")
		}
		p.ctx = id
	}
	if m == "" || len(m) > 20 || (m[0] == '0' && len(m) > 1) || strings.Trim(m, "0123456789") != "" {
		return bad("the part after the dot is not a decimal number")
	}
	n, err := strconv.ParseUint(m, 10, 64)
	if err != nil {
		return bad("the number after the dot is too large")
	}
	p.mark = n
	return p, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
