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

// `nexus bench search --sustain` for a moment: a row per ration with the
// write rate, the rates searchable and into the graph and the lags, both
// lags once a second, and the
// full build in the same run; a bad --rations is a usage error.
func TestCLI_BenchSearchSustain(t *testing.T) {
	cmd := exec.Command(binary, "bench", "search", "--sustain", "2s", "--clients", "4", "--rations", "0.25,1", "--topics", "40", "--max-lag", "200", "--dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench search --sustain: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	for _, row := range []string{
		`writes wait while the searchable lag is over 200 \(--max-lag\)`,
		`\| fixed: 0\.25 of a core \(before\) \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \| [^|]+ \(\d+/s\) \| \d+ \(\d+\.\d s\) \| \d\.\d\d \| [^|]+ \|`,
		`\| rising with the lag: 0\.25 → 1 core\(s\) at 10,000 behind \(default\) \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \| [^|]+ \(\d+/s\) \| \d+ \(\d+\.\d s\) \| \d\.\d\d \| [^|]+ \|`,
		`\| 1 \| \d+ \| \d+ \| \d+ \| \d+ \|`,
		`full build of the last run's \d+ contexts [^\n]*: [^,]+, \d+ contexts/s`,
		`build rate / acked write rate, rising with the lag[^:]*: \d+\.\d\d`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("no line matching %s", row)
		}
	}
	bad := exec.Command(binary, "bench", "search", "--sustain", "1s", "--rations", "0.25,x")
	if err := bad.Run(); err == nil || bad.ProcessState.ExitCode() != 2 {
		t.Errorf("--rations 0.25,x: %v (exit %d), want exit 2", err, bad.ProcessState.ExitCode())
	}
	bad = exec.Command(binary, "bench", "search", "--sustain", "1s", "--max-lag", "0")
	if err := bad.Run(); err == nil || bad.ProcessState.ExitCode() != 2 {
		t.Errorf("--max-lag 0: %v (exit %d), want exit 2", err, bad.ProcessState.ExitCode())
	}
}
