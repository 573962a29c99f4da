package gitstore

import (
	"strings"
	"testing"
	"time"
)

// A sealed file altered after sealing, or sealed under a data key the
// ring does not hold, is refused, never returned.
func TestKeyring_Open_Tampered(t *testing.T) {
	var m masterKey
	copy(m[:], randomBytes(MasterKeySize))
	k, err := newKeyring(m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"content":"secret"}` + "\n")
	sealed := k.seal(plain)
	if got, err := k.open(sealed); err != nil || string(got) != string(plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	for i := range sealed {
		bad := append([]byte(nil), sealed...)
		bad[i] ^= 0x01
		if got, err := k.open(bad); err == nil {
			t.Fatalf("byte %d flipped: opened as %q", i, got)
		}
	}
	if _, err := k.open(sealed[:sealOverhead-1]); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := k.open(plain); err != errNotSealed {
		t.Fatalf("plaintext: %v", err)
	}
	other, _ := newKeyring(m, time.Now())
	if _, err := other.open(sealed); err == nil || !strings.Contains(err.Error(), "fails authentication under data key 1") {
		t.Fatalf("another ring's data key 1: %v", err)
	}
}

// BenchmarkKeyring_Seal measures the CPU cost of sealing and opening one
// context file of the size the write benchmarks use.
func BenchmarkKeyring_Seal(b *testing.B) {
	var m masterKey
	k, err := newKeyring(m, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	plain := []byte(`{"id":"01KDYAK3484QN5352P0GFWYW9B","namespace":"default","type":"observation","content":"` + strings.Repeat("agents remember what they learned; ", 14) + `"}` + "\n")
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			k.seal(plain)
		}
	})
	sealed := k.seal(plain)
	b.Run("open", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			if _, err := k.open(sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
