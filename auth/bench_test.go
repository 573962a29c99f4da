package auth_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

// The cost of one Authenticate of a token: the strength check, the hash
// and the comparison with every principal's hash.
func BenchmarkSet_Authenticate(b *testing.B) {
	for _, n := range []int{1, 3, 100} {
		b.Run(fmt.Sprint("principals-", n), func(b *testing.B) {
			f := &auth.File{}
			var tok string
			for i := range n {
				tok, _ = f.Create(nexus.Principal{Name: fmt.Sprint("p", i), Role: nexus.RoleRead, Read: []string{"*"}}, now)
			}
			path := filepath.Join(b.TempDir(), "tokens.json")
			if err := f.Save(path); err != nil {
				b.Fatal(err)
			}
			s, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Authenticate(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
