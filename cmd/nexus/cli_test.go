package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The verbs that start a server refuse a positional argument they do not
// take, like every other verb (TestRun_UnexpectedArguments), before they
// start anything. A verb that took the argument would run: the deadline
// ends it.
func TestCLI_UnexpectedArguments(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	for _, args := range [][]string{
		{"serve", "extra", "--data", none, "--addr", "127.0.0.1:0"},
		{"bench", "report", "extra", "--dir", none, "--phase", "1ms", "--git-loop", "1", "--fast-import", "1", "--small", "1", "--big", "1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), `unexpected argument`) {
			t.Errorf("%q: %v, want exit 2 and a usage error:\n%s", args, err, out)
		}
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("a refused command made %s: %v", none, err)
	}
}
