package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/nexus-mem/nexus"
)

// Bounds of a token.
const (
	// TokenPrefix starts the tokens NewToken makes.
	TokenPrefix = "nxs_"
	// MinTokenLen is the shortest token accepted.
	MinTokenLen = 32
	// MaxTokenLen is the longest credential looked at.
	MaxTokenLen = 4096
	// MinTokenBits is the least entropy a token must show, estimated from
	// how often each of its characters occurs.
	MinTokenBits = 100
	// minDistinct is the fewest different characters a token may have.
	minDistinct = 12
)

// NewToken returns a new random token: TokenPrefix and 256 random bits in
// unpadded base64url (47 characters).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken returns the stored form of a token: its SHA-256, in hex.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// CheckStrength refuses a token that is too short, too long, has spaces
// or control characters, or shows too little variety to be random: at
// least MinTokenLen printable ASCII characters, minDistinct of them
// different, and MinTokenBits of entropy by the frequency of each
// character. It cannot prove a token random; NewToken's are.
func CheckStrength(tok string) error {
	if len(tok) < MinTokenLen {
		return weak("it has %d characters, at least %d are needed", len(tok), MinTokenLen)
	}
	if len(tok) > MaxTokenLen {
		return weak("it has %d characters, at most %d are allowed", len(tok), MaxTokenLen)
	}
	var counts [128]int
	distinct := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f {
			return weak("only printable ASCII without spaces is allowed")
		}
		if counts[c] == 0 {
			distinct++
		}
		counts[c]++
	}
	if distinct < minDistinct {
		return weak("it has %d different characters, at least %d are needed", distinct, minDistinct)
	}
	if bits := entropyBits(counts[:], len(tok)); bits < MinTokenBits {
		return weak("it shows about %.0f bits of entropy, at least %d are needed", bits, MinTokenBits)
	}
	return nil
}

// entropyBits is n times the Shannon entropy of the character counts.
func entropyBits(counts []int, n int) float64 {
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(n)
			h -= p * math.Log2(p)
		}
	}
	return h * float64(n)
}

func weak(format string, args ...any) error {
	return nexus.Errorf(nexus.EInvalid, "the token is too weak: "+format+" (make one with `nexus token create`)", args...)
}
