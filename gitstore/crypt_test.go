package gitstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// keyFile writes a fresh master key (base64) to a 0600 file.
func keyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(gitstore.NewMasterKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func encrypted(key string) gitstore.Options {
	return gitstore.Options{Encrypt: &gitstore.Encryption{KeyFile: key}}
}

// allObjects returns every object of the repository, as git prints them.
func allObjects(t *testing.T, gitDir string) []byte {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", gitDir, "cat-file", "--batch-all-objects", "--batch", "--unordered").Output()
	if err != nil {
		t.Fatalf("git cat-file: %v", err)
	}
	return out
}

func errCode(err error) nexus.Code {
	var ne *nexus.Error
	if errors.As(err, &ne) {
		return ne.Code
	}
	return ""
}

const secret = "the launch code is 7-ALPHA-ZULU"

// An encrypted store reads back what it wrote, while stock git sees a
// valid repository whose history is intact and whose contents are opaque.
func TestStore_Encrypt_OpaqueToGit(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(key))
	var ids []nexus.ID
	for i := range 20 {
		c := mustPut(t, s, nexus.Draft{Type: nexus.TypeDecision, AgentID: "planner", Content: fmt.Sprintf("%s #%d", secret, i),
			Metadata: []byte(`{"customer":"ACME-SECRET-CUSTOMER"}`)})
		ids = append(ids, c.ID)
	}
	for i, id := range ids {
		c, err := s.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s #%d", secret, i); c.Content != want || string(c.Metadata) != `{"customer":"ACME-SECRET-CUSTOMER"}` {
			t.Fatalf("context %d reads back as %q %s", i, c.Content, c.Metadata)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	gitDir := filepath.Join(dir, "repo.git")
	objs := allObjects(t, gitDir)
	for _, plain := range []string{"launch code", "ACME-SECRET-CUSTOMER", "7-ALPHA"} {
		if bytes.Contains(objs, []byte(plain)) {
			t.Fatalf("the repository holds %q in the clear", plain)
		}
	}
	if gitFsckFails(t, dir) {
		t.Fatal("git fsck --full --strict fails on an encrypted store")
	}
	if n := strings.TrimSpace(git(t, gitDir, "rev-list", "--count", "main")); n != "20" {
		t.Fatalf("git log holds %s commits, want 20", n)
	}
	subj := strings.TrimSpace(git(t, gitDir, "log", "-1", "--format=%s%n%an", "main"))
	if subj != "decision: (encrypted)\nplanner" {
		t.Fatalf("last commit as git shows it: %q", subj)
	}
	file := strings.TrimSpace(git(t, gitDir, "ls-tree", "-r", "--name-only", "main"))
	if !strings.Contains(file, ids[0].String()+".json") {
		t.Fatalf("tree does not name the first context's file:\n%s", file)
	}
	blob := git(t, gitDir, "cat-file", "-p", "main:"+strings.Split(file, "\n")[0])
	if !strings.HasPrefix(blob, "NXSEAL1\n") {
		t.Fatalf("context file is not sealed: %q", blob[:min(len(blob), 40)])
	}
}

// The catalog rebuilt from git, the deep fsck and the journal all work
// on the decrypted contents.
func TestStore_Encrypt_DerivedState(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(key))
	root := mustPut(t, s, nexus.Draft{Type: nexus.TypeInstruction, Content: secret})
	kid := mustPut(t, s, nexus.Draft{Type: nexus.TypeResult, Content: "done: " + secret, ParentID: root.ID})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "catalog.bin")); err != nil {
		t.Fatal(err)
	}
	s = MustOpen(t, dir, encrypted(key))
	if s.Len() != 2 || !s.Encrypted() {
		t.Fatalf("rebuilt store: %d contexts, encrypted %v", s.Len(), s.Encrypted())
	}
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Fsck(context.Background(), true)
	if err != nil || !rep.Clean() || rep.Contexts != 2 {
		t.Fatalf("deep fsck: %+v, %v", rep, err)
	}
	kids, err := s.Children(context.Background(), root.ID)
	if err != nil || len(kids) != 1 || kids[0].Content != "done: "+secret {
		t.Fatalf("children: %v %v", kids, err)
	}
	lp, err := s.Log(context.Background(), nexus.LogFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Entries) != 2 || lp.Entries[0].ContextID != kid.ID || lp.Entries[0].Summary != "result: done: "+secret {
		t.Fatalf("journal: %+v", lp.Entries)
	}
}

func TestOpen_EncryptionKeyErrors(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(key))
	mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: secret})
	s.Close()

	open := func(opts gitstore.Options) error {
		s, err := gitstore.Open(dir, opts)
		if err == nil {
			s.Close()
		}
		return err
	}
	loose := filepath.Join(t.TempDir(), "loose.key")
	os.WriteFile(loose, []byte(gitstore.NewMasterKey()), 0o644)
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte(base64.StdEncoding.EncodeToString(make([]byte, 16))), 0o600)
	cases := []struct {
		name string
		opts gitstore.Options
		want string
	}{
		{"no key", gitstore.Options{}, "is encrypted at rest: open it with its master key"},
		{"wrong key", encrypted(keyFile(t)), "wrong master key"},
		{"key file readable by others", encrypted(loose), "has mode 0644"},
		{"short key", encrypted(short), "a master key is 32 random bytes"},
		{"missing key file", encrypted(filepath.Join(t.TempDir(), "none")), "cannot read key file"},
		{"failing key command", gitstore.Options{Encrypt: &gitstore.Encryption{KeyCommand: "echo kms down >&2; exit 3"}}, "key command failed (exit status 3): kms down"},
		{"both sources", gitstore.Options{Encrypt: &gitstore.Encryption{KeyFile: key, KeyCommand: "cat " + key}}, "not both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := open(c.opts)
			if errCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("open: %v; want an invalid error containing %q", err, c.want)
			}
		})
	}
	// The key from a command, raw bytes on stdout, opens it.
	raw := filepath.Join(t.TempDir(), "raw.key")
	b, _ := os.ReadFile(key)
	k, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	os.WriteFile(raw, k, 0o600)
	s = MustOpen(t, dir, gitstore.Options{Encrypt: &gitstore.Encryption{KeyCommand: "cat " + raw}})
	if s.Len() != 1 {
		t.Fatalf("opened with the key command: %d contexts", s.Len())
	}
}

// Encryption cannot be turned on over contexts stored in the clear.
func TestOpen_EncryptPlainStore(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "plain"})
	s.Close()
	_, err := gitstore.Open(dir, encrypted(keyFile(t)))
	if errCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "only be turned on for a new store") {
		t.Fatalf("open: %v", err)
	}
	s = MustOpen(t, dir, gitstore.Options{})
	if s.Len() != 1 || s.Encrypted() {
		t.Fatalf("after the refusal: %d contexts, encrypted %v", s.Len(), s.Encrypted())
	}
}

// Rekey rewraps the data key under a new master key; a new data key seals
// later writes while earlier ones stay readable with theirs.
func TestStore_Rekey(t *testing.T) {
	oldKey, newKey, dir := keyFile(t), keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(oldKey))
	before := mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "before " + secret})
	info, err := s.Rekey(context.Background(), gitstore.Encryption{KeyFile: newKey}, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Current != 2 || len(info.DataKey) != 2 {
		t.Fatalf("after rekey: %+v", info)
	}
	after := mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "after " + secret})
	s.Close()

	if _, err := gitstore.Open(dir, encrypted(oldKey)); errCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("open with the retired master key: %v", err)
	}
	gitDir := filepath.Join(dir, "repo.git")
	if n := strings.TrimSpace(git(t, gitDir, "rev-list", "--count", "refs/nexus/keys")); n != "1" {
		t.Fatalf("refs/nexus/keys has %s commits; the ring wrapped by the old key must not stay reachable", n)
	}
	for id, kid := range map[nexus.ID]byte{before.ID: 1, after.ID: 2} {
		path := strings.TrimSpace(git(t, gitDir, "ls-tree", "-r", "--name-only", "main"))
		var file string
		for _, p := range strings.Split(path, "\n") {
			if strings.HasSuffix(p, id.String()+".json") {
				file = p
			}
		}
		blob := git(t, gitDir, "cat-file", "blob", "main:"+file)
		if got := blob[len("NXSEAL1\n")+3]; got != kid {
			t.Fatalf("context %s sealed with data key %d, want %d", id, got, kid)
		}
	}
	s = MustOpen(t, dir, encrypted(newKey))
	for _, c := range []*nexus.Context{before, after} {
		got, err := s.Get(context.Background(), c.ID)
		if err != nil || got.Content != c.Content {
			t.Fatalf("read %s after rekey: %v %v", c.ID, got, err)
		}
	}
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}
}

func TestStore_Rekey_NotEncrypted(t *testing.T) {
	s := MustOpen(t, "", gitstore.Options{})
	_, err := s.Rekey(context.Background(), gitstore.Encryption{KeyFile: keyFile(t)}, false)
	if errCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "not encrypted") {
		t.Fatalf("rekey: %v", err)
	}
}

// Two replicas holding the same data key apply the same batch into
// byte-identical objects: the nonce is derived, not random.
func TestStore_Encrypt_ApplyDeterministic(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(key))
	s.Close()
	replica := copyDir(t, dir)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var gen nexus.IDGenerator
	var batch []*nexus.Context
	for i := range 10 {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		c := &nexus.Context{ID: gen.New(ts), Namespace: "a", Type: nexus.TypeResult, AgentID: "agent", Timestamp: ts, Metadata: []byte(fmt.Sprintf(`{"i":%d}`, i)), Content: fmt.Sprintf("%s %d", secret, i)}
		c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
		batch = append(batch, c)
	}
	var heads []gitstore.Hash
	for _, d := range []string{dir, replica} {
		s := MustOpen(t, d, encrypted(key))
		h, err := s.Apply(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	if heads[0] != heads[1] {
		t.Fatalf("replicas with one data key disagree: %s != %s", heads[0], heads[1])
	}
}

// Side log segments (the embeddings of the search index) are sealed too.
func TestSideLog_Encrypted(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	s := MustOpen(t, dir, encrypted(key))
	seg := []byte("vector segment " + secret)
	if err := s.SideLog().Append(context.Background(), "vectors/m", seg); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	err := s.SideLog().Walk(context.Background(), "vectors/m", func(b []byte) error { got = append(got, b); return nil })
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], seg) {
		t.Fatalf("walk: %q %v", got, err)
	}
	if _, err := s.AppendSide(context.Background(), gitstore.KeysRef, map[string][]byte{"x": {1}}, "x"); errCode(err) != nexus.EInvalid {
		t.Fatalf("append to the key ring ref: %v", err)
	}
	s.Close()
	if bytes.Contains(allObjects(t, filepath.Join(dir, "repo.git")), []byte(secret)) {
		t.Fatal("a side log segment is stored in the clear")
	}
}

// A master key can be given as raw bytes in its file too.
func TestOpen_RawKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "raw.key")
	k := make([]byte, 32)
	rand.Read(k)
	k[31] = '\n' // raw bytes may end in what looks like white space
	os.WriteFile(p, k, 0o600)
	dir := t.TempDir()
	s := MustOpen(t, dir, encrypted(p))
	mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: secret})
	s.Close()
	s = MustOpen(t, dir, encrypted(p))
	if s.Len() != 1 {
		t.Fatalf("reopened: %d contexts", s.Len())
	}
}

// A point-in-time restore and a backup restored into a new directory
// keep an encrypted store readable with its key, and only with it.
func TestStore_Encrypt_RestoreAndBackup(t *testing.T) {
	key, dir := keyFile(t), t.TempDir()
	opts := encrypted(key)
	var clock atomic.Int64 // an hour per reading: commits a second apart
	clock.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Unix())
	opts.Now = func() time.Time { return time.Unix(clock.Add(3600), 0).UTC() }
	s := MustOpen(t, dir, opts)
	first := mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "first " + secret})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "second " + secret})
	info, err := s.Backup(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := s.RestoreTo(context.Background(), first.Timestamp, false)
	if err != nil || plan.RolledBack != 1 || s.Len() != 1 {
		t.Fatalf("restore: %+v %v, %d contexts", plan, err, s.Len())
	}
	if got, err := s.Get(context.Background(), first.ID); err != nil || got.Content != first.Content {
		t.Fatalf("after restore: %v %v", got, err)
	}
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}

	into := filepath.Join(t.TempDir(), "restored")
	if _, err := gitstore.RestoreBackup(context.Background(), info.Path, into); err != nil {
		t.Fatal(err)
	}
	if _, err := gitstore.Open(into, gitstore.Options{}); errCode(err) != nexus.EInvalid {
		t.Fatalf("backup opened without the key: %v", err)
	}
	r := MustOpen(t, into, encrypted(key))
	if r.Len() != 2 {
		t.Fatalf("restored backup holds %d contexts", r.Len())
	}
	if got, err := r.Get(context.Background(), first.ID); err != nil || got.Content != first.Content {
		t.Fatalf("from the backup: %v %v", got, err)
	}
}
