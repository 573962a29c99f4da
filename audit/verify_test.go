package audit_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/audit"
)

// sixRecords is the file of a log holding three actions (six records),
// as lines.
func sixRecords(t *testing.T) (path string, lines [][]byte) {
	t.Helper()
	l := openLog(t, nil)
	for _, a := range []string{"fsck", "restore", "backup"} {
		if err := l.Do(context.Background(), a, audit.Fields{"n": a}, func() (audit.Fields, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	lines = bytes.SplitAfter(b, []byte("\n"))
	return l.Path(), lines[:len(lines)-1]
}

func TestVerify(t *testing.T) {
	_, lines := sixRecords(t)
	edit := func(i int, from, to string) func([][]byte) [][]byte {
		return func(ls [][]byte) [][]byte {
			ls[i] = bytes.Replace(ls[i], []byte(from), []byte(to), 1)
			return ls
		}
	}
	for _, tc := range []struct {
		name     string
		tamper   func([][]byte) [][]byte
		line     int64
		contains string
	}{
		{"edited principal", edit(2, `"principal":"node"`, `"principal":"ops"`), 4, "SHA-256 of line 3"},
		{"edited outcome", edit(3, `"outcome":"ok"`, `"outcome":"failed"`), 5, "SHA-256 of line 4"},
		{"deleted record", func(ls [][]byte) [][]byte { return append(ls[:2], ls[3:]...) }, 3, "SHA-256 of line 2"},
		{"deleted first record", func(ls [][]byte) [][]byte { return ls[1:] }, 1, "records before it were deleted"},
		{"reordered records", func(ls [][]byte) [][]byte { ls[2], ls[3] = ls[3], ls[2]; return ls }, 3, "SHA-256 of line 2"},
		{"duplicated record", func(ls [][]byte) [][]byte { return append(ls[:3], ls[2:]...) }, 4, "SHA-256 of line 3"},
		{"damaged line", edit(1, `{`, `[`), 2, "not a record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := tc.tamper(cloneLines(lines))
			_, err := audit.Verify(bytes.NewReader(bytes.Join(ls, nil)), nil)
			var ce *audit.ChainError
			if !errors.As(err, &ce) || ce.Line != tc.line || !strings.Contains(ce.Reason, tc.contains) {
				t.Fatalf("Verify = %v; want the chain broken on line %d (%q)", err, tc.line, tc.contains)
			}
		})
	}
	t.Run("intact", func(t *testing.T) {
		head, err := audit.Verify(bytes.NewReader(bytes.Join(lines, nil)), nil)
		last := bytes.TrimSuffix(lines[5], []byte("\n"))
		if err != nil || head != (audit.Head{Records: 6, Seq: 6, Hash: audit.Hash(last)}) {
			t.Fatalf("Verify = %+v, %v", head, err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		head, err := audit.Verify(strings.NewReader(""), nil)
		if err != nil || head != (audit.Head{Hash: audit.Genesis}) {
			t.Fatalf("Verify = %+v, %v", head, err)
		}
	})
}

func cloneLines(ls [][]byte) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		out[i] = bytes.Clone(l)
	}
	return out
}

// shellCheck is the check docs/SECURITY.md gives, with sh, sed and
// sha256sum only: it prints the line number of the first record whose
// prev is not the hash of the line before it, or "ok N".
const shellCheck = `prev=0000000000000000000000000000000000000000000000000000000000000000; n=0
while IFS= read -r line; do
  n=$((n+1))
  [ "$(printf '%s' "$line" | sed 's/.*"prev":"\([0-9a-f]*\)".*/\1/')" = "$prev" ] || { echo "broken $n"; exit 1; }
  prev=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
done < "$1"
echo "ok $n"`

func TestVerify_withShellTools(t *testing.T) {
	for _, tool := range []string{"sh", "sed", "sha256sum", "cut"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the documented shell verification: %v", tool, err)
		}
	}
	path, lines := sixRecords(t)
	run := func() string {
		out, _ := exec.Command("sh", "-c", shellCheck, "sh", path).Output()
		return strings.TrimSpace(string(out))
	}
	if got := run(); got != "ok 6" {
		t.Fatalf("shell check of an intact log: %q, want ok 6", got)
	}
	ls := cloneLines(lines)
	ls[1], ls[2] = ls[2], ls[1]
	if err := os.WriteFile(path, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != "broken "+strconv.Itoa(2) {
		t.Fatalf("shell check of a reordered log: %q, want broken 2", got)
	}
}
