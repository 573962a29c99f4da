package retry_test

import (
	"math"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/internal/retry"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"120", 2 * time.Minute, true},
		{" 3 ", 3 * time.Second, true},
		{"0", 0, true},
		{"007", 7 * time.Second, true},
		{"99999999999999999999999", time.Duration(math.MaxInt64), true},
		{"9223372037", time.Duration(math.MaxInt64), true},
		{"9223372036", 9223372036 * time.Second, true},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},  // RFC 850
		{"Wed Oct 21 07:28:05 2015", 5 * time.Second, true},       // asctime
		{"Wed, 21 Oct 2015 07:00:00 GMT", 0, true},                // in the past
		{"", 0, false}, {"   ", 0, false}, {"-1", 0, false}, {"1.5", 0, false}, {"+5", 0, false},
		{"soon", 0, false}, {"5s", 0, false}, {"2015-10-21T07:28:30Z", 0, false},
	} {
		got, ok := retry.ParseRetryAfter(tc.header, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Wed, 21 Oct 2015 07:28:30 GMT", "", "-1", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		if d, ok := retry.ParseRetryAfter(h, now); d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", h, d, ok)
		}
	})
}
