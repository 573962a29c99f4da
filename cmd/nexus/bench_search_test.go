package main_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"testing"
)

// `nexus bench search` at a small size: every table is printed, and a
// selective filter answered from the posting lists gives the very hits
// the predicate scan gives, query by query.
func TestCLI_BenchSearch(t *testing.T) {
	cmd := exec.Command(binary, "bench", "search", "--n", "400", "--queries", "20", "--topics", "40", "--dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench search: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	for _, row := range []string{
		`\| predicate asked about every context \(before posting lists\) \| \d[^|]* \| \d[^|]* \| — \|`,
		`\| posting lists \| \d[^|]* \| \d[^|]* \| 20 of 20 queries \|`,
		`\| semantic \(HNSW\) \| \d[^|]* \| \d[^|]* \| \d\.\d{3} \|`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("no row matching %s", row)
		}
	}
}
