package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
)

// An event id from a client either fails as invalid or has a canonical
// form that parses to itself; the canonical form differs from the input
// only in the case of its letters.
func FuzzParsePosition(f *testing.F) {
	for _, seed := range []string{
		"01KB2W3G6T0Q5A9QYQ7M3N8C2D", "01kb2w3g6t0q5a9qyq7m3n8c2d", "01KB2W3G6T0Q5A9QYQ7M3N8C2D.1764251773123456",
		"0.0", "0.18446744073709551615", "0.18446744073709551616", "0.01", "00000000000000000000000000",
		".", "x.1", "01KB2W3G6T0Q5A9QYQ7M3N8C2D.", "01KB2W3G6T0Q5A9QYQ7M3N8C2D.1.2", "0.+1", "0. 1", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canon, err := events.ParsePosition(s)
		if err != nil {
			var e *nexus.Error
			if !errors.As(err, &e) || e.Code != nexus.EInvalid || e.Message == "" {
				t.Fatalf("error %v is not an invalid *nexus.Error with a message", err)
			}
			return
		}
		again, err := events.ParsePosition(canon)
		if err != nil || again != canon {
			t.Fatalf("%q parsed to %q, which parses to %q, %v", s, canon, again, err)
		}
		if !strings.EqualFold(canon, s) {
			t.Fatalf("%q parsed to %q", s, canon)
		}
	})
}
