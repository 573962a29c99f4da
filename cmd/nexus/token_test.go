package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/httpapi"
)

// nexusCmd runs the binary with stdin and returns stdout, stderr and the
// exit code.
func tokenCmd(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "NEXUS_TOKEN=", "NEXUS_TOKENS_FILE=", "NEXUS_DATA=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

var tokenLine = regexp.MustCompile(`^nxs_[A-Za-z0-9_-]{43}\n$`)

func TestToken_createListRevoke(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "tokens.json")
	out, errs, code := tokenCmd(t, "", "token", "create", "--data", data, "--name", "ci", "--role", "write", "--read", "docs, team-*", "--write", "team-*")
	if code != 0 || !tokenLine.MatchString(out) || !strings.Contains(errs, "principal ci (role write) stored in "+path+" as a hash") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	tok := strings.TrimSpace(out)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file: %v %v", st, err)
	}
	stored, _ := os.ReadFile(path)
	if bytes.Contains(stored, []byte(tok)) || !bytes.Contains(stored, []byte(auth.HashToken(tok))) {
		t.Fatalf("the file must hold the token's hash only:\n%s", stored)
	}
	if _, errs, code := tokenCmd(t, "", "token", "create", "--file", path, "--name", "ci", "--role", "read", "--read", "*"); code != 1 || errs != "nexus token: principal ci exists: revoke it first to give it a new token (conflict)\n" {
		t.Fatalf("create twice: %d %q", code, errs)
	}
	if _, errs, code := tokenCmd(t, "", "token", "create", "--file", path, "--name", "x", "--role", "root", "--read", "*"); code != 2 || !strings.Contains(errs, `role "root": must be read, write or admin`) {
		t.Fatalf("bad role: %d %q", code, errs)
	}
	out, _, code = tokenCmd(t, "", "token", "list", "--file", path)
	if code != 0 || !regexp.MustCompile(`^NAME +ROLE +READ +WRITE +CREATED\nci +write +docs,team-\* +team-\* +\d{4}-\d\d-\d\dT\S+Z\n$`).MatchString(out) {
		t.Fatalf("list: %d %q", code, out)
	}
	out, _, code = tokenCmd(t, auth.TokenPrefix+"not-this-one\n", "token", "hash")
	if code != 1 || out != "" {
		t.Fatalf("hash of a weak token: %d %q", code, out)
	}
	out, _, code = tokenCmd(t, tok+"\n", "token", "hash")
	if code != 0 || out != auth.HashToken(tok)+"\n" {
		t.Fatalf("hash: %d %q", code, out)
	}
	out, _, code = tokenCmd(t, "", "token", "revoke", "--data", data, "ci")
	if code != 0 || !strings.HasPrefix(out, "revoked ci in "+path) {
		t.Fatalf("revoke: %d %q", code, out)
	}
	if _, errs, code := tokenCmd(t, "", "token", "revoke", "--data", data, "ci"); code != 1 || errs != "nexus token: no principal named \"ci\" (not_found)\n" {
		t.Fatalf("revoke twice: %d %q", code, errs)
	}
	if out, _, _ := tokenCmd(t, "", "token", "list", "--data", data); out != "NAME  ROLE  READ  WRITE  CREATED\n" {
		t.Fatalf("list after revoke: %q", out)
	}
}

// A real SIGHUP makes a running server read its tokens file again: a new
// principal works and a revoked one stops, without a restart.
func TestServe_SIGHUPReloadsPrincipals(t *testing.T) {
	data := t.TempDir()
	admin, _, _ := tokenCmd(t, "", "token", "create", "--data", data, "--name", "ops", "--role", "admin", "--read", "*", "--write", "*")
	p := startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	putAs := func(tok string) nexus.Code {
		_, err := httpapi.NewClient(p.url, httpapi.WithToken(strings.TrimSpace(tok))).Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "x"})
		return nexus.ErrorCode(err)
	}
	if code := putAs(admin); code != "" {
		t.Fatalf("ops writing: %q", code)
	}
	if code := putAs(""); code != nexus.EUnauthorized {
		t.Fatalf("no token: %q, want unauthorized", code)
	}
	reader, _, _ := tokenCmd(t, "", "token", "create", "--data", data, "--name", "dash", "--role", "read", "--read", "*")
	tokenCmd(t, "", "token", "revoke", "--data", data, "ops")
	if code := putAs(reader); code != nexus.EUnauthorized {
		t.Fatalf("a new token before SIGHUP: %q, want unauthorized", code)
	}
	hup := func(n int) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(p.stderr.String(), "reloaded principals") < n {
			if time.Now().After(deadline) {
				t.Fatalf("no reload logged after SIGHUP:\n%s", p.stderr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	hup(1)
	if code := putAs(reader); code != nexus.EForbidden {
		t.Fatalf("the new reader writing: %q, want forbidden", code)
	}
	if code := putAs(admin); code != nexus.EUnauthorized {
		t.Fatalf("revoked ops: %q, want unauthorized", code)
	}
	if !strings.Contains(p.stderr.String(), "reason=\"unknown token\"") {
		t.Errorf("refusals are not logged:\n%s", p.stderr)
	}
	os.WriteFile(filepath.Join(data, "tokens.json"), []byte("{"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.stderr.String(), "reload: the principals in force stay") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed reload logged:\n%s", p.stderr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code := putAs(reader); code != nexus.EForbidden {
		t.Fatalf("the reader after a failed reload: %q, want forbidden", code)
	}
}
