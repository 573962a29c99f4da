package nexus_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

func TestParseID_RoundTrip(t *testing.T) {
	var g nexus.IDGenerator
	now := time.Now()
	prev := nexus.ZeroID
	for i := 0; i < 10000; i++ {
		id := g.New(now.Add(time.Duration(i%3) * time.Millisecond))
		if id.Compare(prev) <= 0 || id.String() <= prev.String() {
			t.Fatalf("id %d not increasing: %s after %s", i, id, prev)
		}
		got, err := nexus.ParseID(id.String())
		if err != nil || got != id {
			t.Fatalf("round trip %s: %v %v", id, got, err)
		}
		low, err := nexus.ParseID(strings.ToLower(id.String()))
		if err != nil || low != id {
			t.Fatalf("lowercase %s: %v", id, err)
		}
		prev = id
	}
	if d := prev.Time().Sub(now.Truncate(time.Millisecond)); d < 0 || d > 3*time.Millisecond {
		t.Fatalf("id time %s far from %s", prev.Time(), now)
	}
}

func TestIDGenerator_Observe(t *testing.T) {
	var g nexus.IDGenerator
	future := g.New(time.Now().Add(time.Hour))
	var g2 nexus.IDGenerator
	g2.Observe(future)
	if id := g2.New(time.Now()); id.Compare(future) <= 0 {
		t.Fatalf("id after a clock step back %s <= observed %s", id, future)
	}
}

func TestParseID_Invalid(t *testing.T) {
	for _, s := range []string{"", "../etc/passwd", "%2e%2e", "01M8E820BJ5F287XHC5JEXMK7", "01M8E820BJ5F287XHC5JEXMK7MM",
		"01M8E820BJ5F287XHC5JEXMK7\x00", "01M8E820BJ5F287XHC5JEXMK7U", "81M8E820BJ5F287XHC5JEXMK7M", "00000000000000000000000000", "01M8E820BJ5F287XHC5JEXM/.."} {
		if _, err := nexus.ParseID(s); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("ParseID(%q) = %v, want an invalid error", s, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	var g nexus.IDGenerator
	f.Add(g.New(time.Now()).String())
	f.Add("../../../../../../etc/passwd")
	f.Add("01M8E820BJ5F287XHC5JEXMK7\x00")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := nexus.ParseID(s)
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("error code %s", nexus.ErrorCode(err))
			}
			return
		}
		// Anything accepted is safe as a file name and round-trips.
		if !strings.EqualFold(id.String(), s) || strings.ContainsAny(id.String(), "/.\x00") {
			t.Fatalf("ParseID(%q) = %s", s, id)
		}
	})
}
