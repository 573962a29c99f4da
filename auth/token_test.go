package auth_test

import (
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, auth.TokenPrefix) || len(tok) != 47 || seen[tok] {
			t.Fatalf("token %q: want a new nxs_ token of 47 characters", tok)
		}
		if err := auth.CheckStrength(tok); err != nil {
			t.Fatalf("a new token is too weak: %v", err)
		}
		seen[tok] = true
	}
}

func TestCheckStrength(t *testing.T) {
	for _, tc := range []struct {
		name, tok, want string // want: "" for strong, else a piece of the message
	}{
		{"hex of 128 bits", "3f9a61c0d2e84b7791aa0c5e6d13f2b8", ""},
		{"short", "s3cret-token", "it has 12 characters, at least 32 are needed"},
		{"space", "abcdefghijklmnopqrstuvwxyz 0123456789", "only printable ASCII without spaces"},
		{"control", "abcdefghijklmnopqrstuvwxyz\x010123456789", "only printable ASCII without spaces"},
		{"non-ASCII", "abcdefghijklmnopqrstuvwxyzé0123456789", "only printable ASCII without spaces"},
		{"one letter", strings.Repeat("a", 40), "it has 1 different characters, at least 12 are needed"},
		{"skewed", "abcdefghijkl" + strings.Repeat("a", 52), "bits of entropy, at least 100 are needed"},
		{"too long", strings.Repeat("0123456789abcdef", 257), "at most 4096 are allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := auth.CheckStrength(tc.tok)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want invalid saying %q", err, tc.want)
			}
		})
	}
}

func TestHashToken(t *testing.T) {
	// sha256("abc"), the FIPS 180-2 example.
	if got := auth.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
}
