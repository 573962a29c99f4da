package main_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// `nexus bench quality` on one set with a little noise: the real binary
// prints, for the hashing model and the learned one, the table of each
// split with a row per mode, and --tune a line per weight of its grid;
// then the two models side by side on the held-out questions.
func TestCLI_BenchQuality(t *testing.T) {
	cmd := exec.Command(binary, "bench", "quality", "--sets", "nexusdocs", "--noise", "50", "--tune", "--dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench quality: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, model := range []string{`nexus-hash-v1-384`, `nexus-cooc-v1-512-[0-9a-f]{12}`} {
		if !regexp.MustCompile(`(?m)^## nexusdocs — 275 documents, 42 questions \(14 held out\), model ` + model + `, built in `).MatchString(out) {
			t.Fatalf("no header for the set with %s:\n%s", model, out)
		}
		for _, mode := range []string{"semantic", "hybrid"} {
			row := `(?m)^\| nexusdocs \| ` + mode + ` \| ` + model + ` \| \d+/14 \| [01]\.\d{3} \| [01]\.\d{3} \|$`
			if !regexp.MustCompile(row).MatchString(out) {
				t.Errorf("no held-out row of %s for %s:\n%s", mode, model, out)
			}
		}
	}
	for _, split := range []string{"held-out", "tune"} {
		n := 14
		if split == "tune" {
			n = 28
		}
		for _, mode := range []string{"keyword", "semantic", "hybrid", `plain BM25 \(reference\)`} {
			row := `(?m)^\| ` + split + ` \| ` + mode + ` \| [01]\.\d{3} \| [01]\.\d{3} \(\d+/` + strconv.Itoa(n) + `\) \| [01]\.\d{3} \| [01]\.\d{3} \| [01]\.\d{3} \|$`
			if got := len(regexp.MustCompile(row).FindAllString(out, -1)); got != 2 {
				t.Errorf("%d %s rows for %s, want one per model:\n%s", got, split, mode, out)
			}
		}
	}
	// Per model: keyword search's line, then 2×7 small shares and 13×13 weights.
	if got := strings.Count(out, "tune\tnexusdocs\t"); got != 2*(1+14+13*13) {
		t.Errorf("%d tuning lines, want 184 per model", got)
	}
	if got := len(regexp.MustCompile(`(?m)^tune\tnexusdocs\tkeyword\t-(\t[01]\.\d{4}){3}$`).FindAllString(out, -1)); got != 2 {
		t.Errorf("%d keyword tuning lines, want one per model", got)
	}
	if got := len(regexp.MustCompile(`(?m)^tune\tnexusdocs(\t[01]\.\d{4}){5}\t(true|false)$`).FindAllString(out, -1)); got != 2*(14+13*13) {
		t.Errorf("%d weight tuning lines, want 183 per model", got)
	}
	if err := exec.Command(binary, "bench", "quality", "--sets", "nosuchset").Run(); err == nil {
		t.Error("an unknown set was accepted")
	}
	if err := exec.Command(binary, "bench", "quality", "--embedder", "hash,bert").Run(); err == nil {
		t.Error("an unknown embedder was accepted")
	}
}
