package secrets_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/secrets"
)

func TestChildEnv(t *testing.T) {
	t.Setenv("NEXUS_TOKEN", "tok-server-secret")
	t.Setenv("NEXUS_TOKEN_FILE", "/somewhere/token")
	t.Setenv("OPENAI_API_KEY", "sk-server-key")
	t.Setenv("LC_ALL", "C")
	t.Setenv("TZ", "UTC")
	cmd := exec.Command("env") // a real child, started with the minimal environment
	cmd.Env = secrets.ChildEnv("LISTED=yes", "TZ=Europe/Paris")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		if !secrets.Inherited(name) && name != "LISTED" {
			t.Errorf("the child sees %s", name)
		}
	}
	for _, want := range []string{"LISTED=yes", "TZ=Europe/Paris", "LC_ALL=C", "PATH=" + os.Getenv("PATH")} {
		if !slices.Contains(lines, want) {
			t.Errorf("the child's environment lacks %s: %q", want, lines)
		}
	}
	if strings.Contains(string(out), "secret") || strings.Contains(string(out), "sk-server-key") {
		t.Fatalf("the child sees a secret of the server: %s", out)
	}
}

func file(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if _, err := secrets.CheckFile("the token file", file(t, "x", mode)); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
		p := file(t, "x", mode)
		_, err := secrets.CheckFile("the token file", p)
		want := fmt.Sprintf("the token file %s may be read or written by other users (mode %04o); refusing to use it: run chmod 600 %s", p, mode, p)
		if nexus.ErrorCode(err) != nexus.EInvalid || nexus.ErrorMessage(err) != want {
			t.Errorf("mode %04o: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
	dir := t.TempDir()
	if _, err := secrets.CheckFile("the token file", dir); nexus.ErrorMessage(err) != "the token file "+dir+" is not a regular file" {
		t.Errorf("directory: err = %v", err)
	}
}

func TestCheckFile_owner(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("giving a file to another user needs root")
		}
		t.Skip("giving a file to another user needs root")
	}
	p := file(t, "x", 0o600)
	if err := os.Chown(p, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	_, err := secrets.CheckFile("the secrets file", p)
	want := "the secrets file " + p + " is owned by user id 4242, not by the user running nexus (0); refusing to use it: run chown 0 " + p
	if nexus.ErrorMessage(err) != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestReadToken(t *testing.T) {
	if tok, err := secrets.ReadToken(file(t, "  tok-abc-123\n", 0o600)); err != nil || tok != "tok-abc-123" {
		t.Fatalf("ReadToken = %q, %v", tok, err)
	}
	p := file(t, "tok-abc-123\n", 0o644)
	if _, err := secrets.ReadToken(p); !strings.Contains(nexus.ErrorMessage(err), "mode 0644") {
		t.Fatalf("a 0644 token file: err = %v", err)
	}
	for content, want := range map[string]string{" \n": "is empty", "a\nb\n": "holds more than one line"} {
		p := file(t, content, 0o600)
		if _, err := secrets.ReadToken(p); !strings.Contains(nexus.ErrorMessage(err), want) || strings.Contains(nexus.ErrorMessage(err), "a\nb") {
			t.Errorf("%q: err = %v, want %q", content, err, want)
		}
	}
}

func TestTokenFromEnv(t *testing.T) {
	p := file(t, "tok-from-file-1\n", 0o600)
	t.Setenv("NEXUS_TOKEN", "")
	t.Setenv("NEXUS_TOKEN_FILE", p)
	if tok, err := secrets.TokenFromEnv(); err != nil || tok != "tok-from-file-1" {
		t.Fatalf("from the file: %q, %v", tok, err)
	}
	t.Setenv("NEXUS_TOKEN", "tok-from-env-2")
	if _, err := secrets.TokenFromEnv(); !strings.HasPrefix(nexus.ErrorMessage(err), "both NEXUS_TOKEN and NEXUS_TOKEN_FILE are set") {
		t.Fatalf("both set: err = %v", err)
	}
	t.Setenv("NEXUS_TOKEN_FILE", "")
	if tok, err := secrets.TokenFromEnv(); err != nil || tok != "tok-from-env-2" {
		t.Fatalf("from the environment: %q, %v", tok, err)
	}
}

func TestListedEnv(t *testing.T) {
	t.Setenv("SERVER_API_KEY", "sk-server-passed-1234")
	t.Setenv("SERVER_MODE", "fast")
	list, keys := secrets.ListedEnv(map[string]string{
		"OPENAI_API_KEY": "${SERVER_API_KEY}", "MODE": "${SERVER_MODE}", "LITERAL": "${not a name}",
		"PLAIN": "x", "MISSING_TOKEN": "${NEXUS_TEST_UNSET_VAR}",
	})
	want := []string{"LITERAL=${not a name}", "MISSING_TOKEN=", "MODE=fast", "OPENAI_API_KEY=sk-server-passed-1234", "PLAIN=x"}
	if !slices.Equal(list, want) {
		t.Errorf("list = %q, want %q", list, want)
	}
	if !slices.Equal(keys, []string{"sk-server-passed-1234"}) {
		t.Errorf("secrets = %q, want the credential passed by reference", keys)
	}
}
