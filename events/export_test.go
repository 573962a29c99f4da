package events

// ParsePosition exposes the event id parser to the fuzz test: it returns
// the canonical form of the id.
func ParsePosition(s string) (string, error) {
	p, err := parsePosition(s)
	return p.String(), err
}
