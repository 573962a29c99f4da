package main_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// `nexus bench recovery` on a tiny store: the real binary meets each of
// the six faults of the recovery time table of docs/BENCHMARKS.md and
// prints its row (the command fails when a fault is not detected, not
// repaired, or a repaired store is not whole).
func TestCLI_BenchRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs six faults against the real binary")
	}
	cmd := exec.Command(binary, "bench", "recovery", "--contexts", "200", "--recover-interval", "200ms", "--timeout", "40s", "--dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench recovery: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	if !strings.Contains(out, "store: 200 contexts; ") {
		t.Errorf("no store line for 200 contexts:\n%s", out)
	}
	s := `(\d+\.\d\d) s`
	bundle := "from the bundle in DATA/backups"
	want := []struct{ fault, took, parts string }{
		{`saved index files deleted under a running node`, "^" + s + "$", "wrote them again from memory"},
		{`index directory destroyed, node restarted`, "^" + s + " ready; " + s + " to a complete index$", "vectors read from git: 0 (the model is local: its vectors are not kept, the texts are embedded again)"},
		{`one bit flipped in the largest pack \(\d+\.\d MB\) under a running node`, "^" + s + "$", "restored " + bundle},
		{`the same, node stopped`, "^" + s + "$", "-> 1 objects restored " + bundle},
		{`the same, node stopped`, "^" + s + ` \+ ` + s + "$", "git_repository recovered"},
		{`largest pack truncated to half, node restarted`, "^" + s + "$", "copied " + bundle},
	}
	rows := tableRows(out)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for i, w := range want {
		row := rows[i]
		if len(row) != 4 {
			t.Fatalf("row %d: %d cells, want 4: %q", i+1, len(row), row)
		}
		if !regexp.MustCompile("^" + w.fault + "$").MatchString(row[0]) {
			t.Errorf("row %d: fault %q, want %s", i+1, row[0], w.fault)
		}
		if !strings.Contains(row[3], w.parts) {
			t.Errorf("row %d: parts %q, want them to say %q", i+1, row[3], w.parts)
		}
		m := regexp.MustCompile(w.took).FindStringSubmatch(row[2])
		if m == nil {
			t.Errorf("row %d: time %q does not match %s", i+1, row[2], w.took)
			continue
		}
		for _, v := range m[1:] {
			if f, _ := strconv.ParseFloat(v, 64); f <= 0 {
				t.Errorf("row %d: time %q is not positive", i+1, row[2])
			}
		}
	}
}

// tableRows returns the cells of the data rows of the markdown table.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| fault |") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		rows = append(rows, cells)
	}
	return rows
}
