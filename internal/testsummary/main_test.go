package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A real `go test -json` run over a module with a passing, a skipped and
// a failing package, and one that does not build.
func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"good/good_test.go": `package good
import "testing"
func TestPass(t *testing.T) { t.Log("quiet when passing") }
func TestSkip(t *testing.T) { t.Skip("needs a thing") }
`,
		"bad/bad_test.go": `package bad
import "testing"
func TestMixed(t *testing.T) {
	t.Run("ok", func(t *testing.T) { t.Log("passing subtest log") })
	t.Run("broken", func(t *testing.T) { t.Error("wrong answer 41") })
}
func TestFine(t *testing.T) {}
`,
		"nobuild/nobuild_test.go": "package nobuild\nimport \"testing\"\nfunc TestX(t *testing.T) { undefined() }\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("go test: %v, want exit status 1", err)
	}
	var w bytes.Buffer
	c, err := summarize(bytes.NewReader(out), &w)
	if err != nil {
		t.Fatal(err)
	}
	got := w.String()
	t.Logf("summary:\n%s", got)
	if c != (counts{passed: 3, failed: 3, skipped: 1}) {
		t.Errorf("counts %+v, want 3 passed (TestPass, TestMixed/ok, TestFine), 3 failed (TestMixed, TestMixed/broken, nobuild), 1 skipped", c)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "3 passed, 3 failed, 1 skipped" {
		t.Errorf("last line %q", last)
	}
	for _, want := range []string{
		`(?m)^ok  \texample.com/m/good\t`,
		`(?m)^FAIL\texample.com/m/bad\t`,
		`(?m)^--- FAIL: TestMixed `,
		`(?m)^ *--- FAIL: TestMixed/broken `,
		`wrong answer 41`,
		`undefined: undefined`,
		`(?m)^skipped: example.com/m/good TestSkip: good_test.go:4: needs a thing$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("no %s in the summary", want)
		}
	}
	for _, not := range []string{"quiet when passing", "passing subtest log", "=== RUN", "TestFine", "\nPASS\n"} {
		if strings.Contains(got, not) {
			t.Errorf("%q in the summary", not)
		}
	}
}

func TestSummarize_NotJSON(t *testing.T) {
	if _, err := summarize(strings.NewReader("ok  \tsome/pkg\t0.1s\n"), new(bytes.Buffer)); err == nil {
		t.Fatal("plain go test output accepted")
	}
}
