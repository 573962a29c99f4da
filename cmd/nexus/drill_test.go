package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/internal/crashfs"
)

// drillRun runs `nexus drill` with args and returns its stdout, stderr
// and exit code.
func drillRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"drill"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("nexus drill %v: %v", args, err)
	}
	code := 0
	if ee != nil {
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// drillRows returns the cells of the report's table, by scenario.
func drillRows(t *testing.T, out string) [][]string {
	t.Helper()
	var rows [][]string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| `") {
			rows = append(rows, strings.Split(strings.Trim(l, "| "), " | "))
		}
	}
	return rows
}

// `nexus drill` on a small store runs every scenario for real (a tmpfs
// for the full disk, fake providers, a scratch 3-node cluster), meets a
// generous objective in each and exits 0; the table, the markdown file
// and the JSON file say so scenario by scenario.
func TestCLI_Drill(t *testing.T) {
	if os.Geteuid() != 0 {
		crashfs.Unavailable(t, "disk_full_resume mounts a tmpfs: needs root")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nexus.yaml")
	var text strings.Builder
	text.WriteString("objectives:\n")
	for _, name := range config.ObjectiveNames {
		text.WriteString("  " + name + ": 5m\n")
	}
	if err := os.WriteFile(conf, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	md, js := filepath.Join(dir, "drill.md"), filepath.Join(dir, "drill.json")
	stdout, stderr, code := drillRun(t, "--config", conf, "--contexts", "200", "--recover-interval", "200ms", "--timeout", "60s",
		"--dir", filepath.Join(dir, "work"), "--markdown", md, "--json", js)
	t.Logf("\n%s", stdout)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstderr:\n%s", code, stderr)
	}
	rows := drillRows(t, stdout)
	if len(rows) != len(config.ObjectiveNames) {
		t.Fatalf("%d rows, want one per scenario (%d):\n%s", len(rows), len(config.ObjectiveNames), stdout)
	}
	took := regexp.MustCompile(`^(\d+\.(?:\d\d|0\d\d\d)) s$`)
	for i, name := range config.ObjectiveNames {
		row := rows[i]
		if len(row) != 6 || row[0] != "`"+name+"`" || row[2] != "5m0s" || row[5] != "met" {
			t.Errorf("row %d: %q, want scenario %s, objective 5m0s, met", i+1, row, name)
			continue
		}
		for _, cell := range row[3:5] {
			m := took.FindStringSubmatch(cell)
			if m == nil {
				t.Errorf("%s: time %q, want seconds", name, cell)
			} else if f, _ := strconv.ParseFloat(m[1], 64); f <= 0 {
				t.Errorf("%s: time %q, want a positive number of seconds", name, cell)
			}
		}
		if !strings.Contains(stderr, "drill ["+strconv.Itoa(i+1)+"/9] "+name+", run 1 of 1: ") {
			t.Errorf("no progress line for %s:\n%s", name, stderr)
		}
	}
	if !strings.Contains(stdout, "store: 200 contexts; ") || !strings.Contains(stdout, "command: `nexus drill --config "+conf+" --contexts 200 ") {
		t.Errorf("the report does not describe its store and command:\n%s", stdout)
	}
	if b, err := os.ReadFile(md); err != nil || string(b) != stdout {
		t.Errorf("--markdown wrote %q (%v), want the report as printed", b, err)
	}
	var results []struct {
		Scenario         string
		ObjectiveSeconds float64 `json:"objective_seconds"`
		Seconds          []float64
		Met              bool
		Error            string
		Parts            []string
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &results); err != nil || len(results) != len(config.ObjectiveNames) {
		t.Fatalf("--json: %d results (%v), want %d:\n%s", len(results), err, len(config.ObjectiveNames), b)
	}
	for i, r := range results {
		if r.Scenario != config.ObjectiveNames[i] || r.ObjectiveSeconds != 300 || len(r.Seconds) != 1 || r.Seconds[0] <= 0 || !r.Met || r.Error != "" || len(r.Parts) != 1 {
			t.Errorf("--json result %d: %+v", i, r)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "work")); len(left) != 0 {
		t.Errorf("the work directory keeps %d entries without --keep", len(left))
	}
}

// An objective no scenario can meet makes the drill exit 3 naming it; a
// data directory given as --dir is copied, never drilled on; mistakes
// in the command line or the objectives exit 2.
func TestCLI_DrillMissed(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nexus.yaml")
	if err := os.WriteFile(conf, []byte("objectives:\n  pack_truncated: 1ns\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	_, stderr, code := drillRun(t, "--scenarios", "index_files_deleted", "--contexts", "50", "--recover-interval", "200ms",
		"--timeout", "60s", "--dir", work, "--keep")
	if code != 0 {
		t.Fatalf("a kept drill: exit %d\n%s", code, stderr)
	}
	data := filepath.Join(work, "store") // a data directory now
	before := treeDigest(t, data)
	stdout, stderr, code := drillRun(t, "--config", conf, "--scenarios", "pack_truncated", "--runs", "2", "--recover-interval", "200ms",
		"--timeout", "60s", "--dir", data)
	t.Logf("\n%s", stdout)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (an objective missed)\nstderr:\n%s", code, stderr)
	}
	if !regexp.MustCompile(`nexus drill: objective missed: pack_truncated \(max \d+\.\d\d s, objective 1ns\)`).MatchString(stderr) {
		t.Errorf("stderr does not name the missed objective:\n%s", stderr)
	}
	rows := drillRows(t, stdout)
	if len(rows) != 1 || rows[0][0] != "`pack_truncated`" || rows[0][2] != "1ns" || rows[0][5] != "**missed**" {
		t.Errorf("rows %q, want pack_truncated missed", rows)
	}
	if !strings.Contains(stdout, "prepared: copied from "+data+" in ") || !strings.Contains(stderr, "pack_truncated, run 2 of 2: ") {
		t.Errorf("the drill did not copy %s or did not run twice:\n%s\n%s", data, stdout, stderr)
	}
	if after := treeDigest(t, data); after != before {
		t.Errorf("the data directory given as --dir changed")
	}

	for _, c := range []struct{ args, want string }{
		{"--scenarios index_rebuild,leader_fail", `unknown scenario "leader_fail"`},
		{"--runs 0", "must be positive"},
		{"--config " + filepath.Join(dir, "bad.yaml"), "objectives.process_restart: must be positive, not 0s"},
	} {
		os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("objectives:\n  process_restart: 0s\n"), 0o600)
		_, stderr, code := drillRun(t, strings.Fields(c.args)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", c.args, code, c.want, stderr)
		}
	}
}

// treeDigest sums up the names, modes and contents of the files under
// dir.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h.Write([]byte(p + "\x00" + info.Mode().String() + "\x00"))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
