package supervisor_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/supervisor"
)

// TestSupervisor_Start_minimalEnvironment proves with a real process that
// a supervised process sees none of the supervisor's secrets, only PATH,
// HOME, LANG, LC_*, TZ and what its spec lists.
func TestSupervisor_Start_minimalEnvironment(t *testing.T) {
	t.Setenv("NEXUS_TOKEN", "tok-supervisor-7f3a9c")
	t.Setenv("NEXUS_TOKEN_FILE", "/etc/nexus/token")
	t.Setenv("OPENAI_API_KEY", "sk-supervisor-key-5d2e")
	t.Setenv("LANG", "C.UTF-8")
	out := filepath.Join(t.TempDir(), "env")
	s := MustNew(t, supervisor.Options{})
	spec := helperSpec(t, "p", "env:"+out)
	spec.Env = append(spec.Env, "LISTED=value-1")
	spec.Policy = supervisor.Policy{Restart: supervisor.RestartNever, MaxBackoff: time.Millisecond, MaxRestarts: 1, Window: time.Minute}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exited", func() bool { return status(t, s, "p").State == supervisor.StateExited })
	if st := status(t, s, "p"); !st.LastExit.Success() {
		t.Fatalf("the helper failed: %+v", st.LastExit)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range strings.Split(string(b), "\n") {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"GORACE", "LISTED", "NEXUS_SUPERVISOR_PIDFILE", "SUPERVISOR_TEST_HELPER"}
	for _, kv := range os.Environ() { // what passes: PATH, HOME, LANG, LC_*, TZ
		name, _, _ := strings.Cut(kv, "=")
		if name == "PATH" || name == "HOME" || name == "LANG" || name == "TZ" || strings.HasPrefix(name, "LC_") {
			want = append(want, name)
		}
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("the process sees %v, want %v", names, want)
	}
	env := string(b)
	for _, secret := range []string{"tok-supervisor-7f3a9c", "sk-supervisor-key-5d2e", "/etc/nexus/token"} {
		if strings.Contains(env, secret) {
			t.Errorf("the process sees the supervisor's secret %s", secret)
		}
	}
	for _, kv := range []string{"LISTED=value-1", "LANG=C.UTF-8", "PATH=" + os.Getenv("PATH")} {
		if !strings.Contains("\n"+env+"\n", "\n"+kv+"\n") {
			t.Errorf("the process lacks %s", kv)
		}
	}
}
