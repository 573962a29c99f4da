package linearize

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Check checks whether history is linearizable under model within timeout
// (zero: no limit). The result is porcupine.Ok, porcupine.Illegal, or
// porcupine.Unknown when the timeout expired first; the information feeds
// [Visualize] (partial linearizations and the illegal steps).
func Check(model porcupine.Model, history []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(model, history, timeout)
}

// Visualize writes porcupine's interactive HTML page of a checked history to
// path.
func Visualize(model porcupine.Model, info porcupine.LinearizationInfo, path string) error {
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("linearize: visualization %s: %w", path, err)
	}
	return nil
}

// ArtifactsEnv names the environment variable of the directory that keeps
// the artifacts of failed checks (CI uploads it).
const ArtifactsEnv = "NEXUS_ARTIFACTS"

// ArtifactDir returns the directory where the test t keeps its artifacts:
// a directory named after the test under $NEXUS_ARTIFACTS when that is
// set, created if needed; otherwise t.ArtifactDir(), which `go test
// -artifacts` keeps (under -outputdir) and which is removed after the test
// otherwise.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		return t.ArtifactDir()
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, t.Name())
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("linearize: artifacts directory: %v", err)
	}
	return dir
}

// Verify checks history under [RegisterModel] and [NamespaceModel] and
// fails t unless both say Ok. For each model that does not, it writes the
// visualization to ArtifactDir(t)/linearize-<model>.html and names the file
// in the failure. A timeout (porcupine.Unknown) fails too: a check that did
// not finish proved nothing, so make the run smaller (fewer operations in
// flight per partition) rather than the timeout longer. It returns whether
// both models said Ok.
func Verify(t testing.TB, history []porcupine.Operation, timeout time.Duration) bool {
	t.Helper()
	ok := true
	for _, m := range []struct {
		name  string
		model porcupine.Model
	}{{"registers", RegisterModel()}, {"namespaces", NamespaceModel()}} {
		res, info := Check(m.model, history, timeout)
		if res == porcupine.Ok {
			continue
		}
		ok = false
		path := filepath.Join(ArtifactDir(t), "linearize-"+m.name+".html")
		if err := Visualize(m.model, info, path); err != nil {
			t.Errorf("%s model: the history of %d operations is %s (the visualization failed: %v)", m.name, len(history), res, err)
			continue
		}
		if res == porcupine.Unknown {
			t.Errorf("%s model: the check of %d operations did not finish within %v; partial visualization: %s", m.name, len(history), timeout, path)
			continue
		}
		t.Errorf("%s model: the history of %d operations is not linearizable; visualization: %s", m.name, len(history), path)
	}
	return ok
}
