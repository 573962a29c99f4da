package main_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/crashfs"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// alive reports whether the process pid runs.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// runbookTLS: the server presents an expired certificate; clients say
// so; the block writes the renewed files and the next handshake
// succeeds, the same process serving.
func runbookTLS(t *testing.T, blocks map[string]runbookBlock) {
	ca := tlstest.NewCA(t, "nexus test CA")
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca.pem")
	cert, key := ca.ExpiredServer(t).Write(t, dir, "server")
	renewed := ca.Server(t)
	newCert, newKey := renewed.Write(t, dir, "renewed")
	p := startServe(t, t.TempDir(), "--no-search", "--backup-interval=0", "--tls-cert="+cert, "--tls-key="+key)
	defer stopServe(p)
	pid := p.cmd.Process.Pid

	out, code := nexusCmd(nil, "ls", "--server", p.url, "--ca", caFile)
	want := "the certificate of the server at " + p.url + " expired: x509: certificate has expired or is not yet valid: current time "
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("a client of the expired certificate: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	stdout, _ := runBlock(t, blocks["tls-check"], map[string]string{"TLS_CERT": cert})
	if !strings.Contains(stdout, "notAfter=") || !strings.Contains(stdout, "Certificate will expire") {
		t.Fatalf("tls-check printed:\n%s", stdout)
	}
	runBlock(t, blocks["tls"], map[string]string{"TLS_CERT": cert, "TLS_KEY": key, "NEW_CERT": newCert, "NEW_KEY": newKey,
		"TLS_CA": caFile, "PID": strconv.Itoa(pid), "NEXUS_SERVER": p.url})

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	c, err := tls.Dial("tcp", strings.TrimPrefix(p.url, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("a handshake after the runbook: %v", err)
	}
	got := c.ConnectionState().PeerCertificates[0]
	c.Close()
	if !got.Equal(renewed.Cert) {
		t.Fatalf("the server presents serial %s, want the renewed %s", got.SerialNumber, renewed.Cert.SerialNumber)
	}
	if !alive(pid) {
		t.Fatal("the server did not keep running")
	}
	out, code = nexusCmd(nil, "put", "--server", p.url, "--ca", caFile, "after the renewal")
	if code != 0 {
		t.Fatalf("put after the renewal: exit %d\n%s", code, out)
	}
	if out, code := nexusCmd(nil, "get", strings.TrimSpace(out), "--server", p.url, "--ca", caFile); code != 0 || !strings.Contains(out, "after the renewal") {
		t.Fatalf("get after the renewal: exit %d\n%s", code, out)
	}
}

// jwtKey is an Ed25519 key of an identity provider, its public half
// written as PEM to path.
func jwtKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv
}

// signJWT is a JWT of an admin principal, signed by key.
func signJWT(t *testing.T, key ed25519.PrivateKey) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "ci-bot", "role": "admin", "read": "*", "write": "*",
		"iss": "idp", "aud": "nexus", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runbookJWT: the identity provider rotated its key; its new tokens are
// refused until the block installs the new public key and signals the
// server; then they work and the old key's do not.
func runbookJWT(t *testing.T, blocks map[string]runbookBlock) {
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "jwt.pub")
	oldKey := jwtKey(t, pubFile)
	conf := filepath.Join(dir, "nexus.yaml")
	// The configuration is the doc's, as written.
	var yaml string
	for _, b := range fencedBlocks(readRunbook(t), "yaml") {
		if strings.Contains(b, "  jwt:\n") {
			yaml = b
		}
	}
	if yaml == "" {
		t.Fatal("docs/RUNBOOK.md shows no configuration with auth.jwt")
	}
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, t.TempDir(), "--no-search", "--backup-interval=0", "--config="+conf)
	defer stopServe(p)
	oldTok := signJWT(t, oldKey)
	out, code := nexusCmd([]string{"NEXUS_TOKEN=" + oldTok}, "put", "--server", p.url, "before the rotation")
	if code != 0 {
		t.Fatalf("put with the old key's token: exit %d\n%s", code, out)
	}
	id := strings.TrimSpace(out)

	newPub := filepath.Join(dir, "new.pub")
	newTok := signJWT(t, jwtKey(t, newPub))
	vars := map[string]string{"JWT": newTok, "NEXUS_SERVER": p.url, "NEXUS_TOKEN": ""}
	stdout, stderr := runBlock(t, blocks["jwt-check"], vars)
	if said := stdout + stderr; !strings.Contains(said, "(unauthorized)") || !strings.Contains(said, "jwt: bad signature") {
		t.Fatalf("jwt-check: the refusal does not say jwt: bad signature:\n%s", said)
	}
	if !strings.Contains(p.stderr.String(), `reason="jwt: bad signature"`) {
		t.Fatalf("the server did not log the reason:\n%s", p.stderr)
	}
	runBlock(t, blocks["jwt"], map[string]string{"NEW_JWT_KEY": newPub, "JWT_KEY": pubFile, "PID": strconv.Itoa(p.cmd.Process.Pid)})
	waitFor(t, time.Minute, "the server logs the reload", func() bool { return strings.Contains(p.stderr.String(), "reloaded principals") })
	if out, code := nexusCmd([]string{"NEXUS_TOKEN=" + newTok}, "get", id, "--server", p.url); code != 0 || !strings.Contains(out, "before the rotation") {
		t.Fatalf("get with the new key's token after the runbook: exit %d\n%s", code, out)
	}
	if out, code := nexusCmd([]string{"NEXUS_TOKEN=" + oldTok}, "get", id, "--server", p.url); code != 1 || !strings.Contains(out, "jwt: bad signature") {
		t.Fatalf("the old key's token after the runbook: exit %d, want 1 and jwt: bad signature\n%s", code, out)
	}
}

// readRunbook is docs/RUNBOOK.md.
func readRunbook(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "RUNBOOK.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noiseContent is 256 KiB of text git cannot compress much.
func noiseContent(t *testing.T) string {
	t.Helper()
	b := make([]byte, 128<<10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// runbookDiskFull: the data directory is on a 16 MiB tmpfs, which the
// operator's own `nexus backup` runs (they keep every bundle) have
// mostly taken; the node fills the rest and answers
// insufficient_storage; the block deletes all but the newest backup and
// the same running node takes writes again, every acknowledged one kept.
func runbookDiskFull(t *testing.T, blocks map[string]runbookBlock) {
	mnt := crashfs.Tmpfs(t, "16m")
	data := filepath.Join(mnt, "data")
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	c := httpapi.NewClient(p.url)
	written := map[nexus.ID]string{}
	put := func() error {
		content := noiseContent(t)
		got, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
		if err == nil {
			written[got.ID] = content
		}
		return err
	}
	for range 8 {
		if err := put(); err != nil {
			t.Fatal(err)
		}
	}
	stopServe(p)
	// Ten bundles of the 8 contexts (≈ 1.1 MB each) leave room for fewer
	// contexts than they hold: the backups take the most space whatever
	// the repository's own overhead.
	for range 10 {
		if out, code := runEnv(t, nil, "backup", "--data", data); code != 0 {
			t.Fatalf("backup: exit %d\n%s", code, out)
		}
	}
	p = startServe(t, data, "--no-search", "--backup-interval=0")
	t.Cleanup(func() { stopServe(p) }) // before the unmount; a second stop does nothing
	c = httpapi.NewClient(p.url)
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		full = put()
	}
	if nexus.ErrorCode(full) != nexus.EInsufficientStorage {
		t.Fatalf("after %d writes on a 16 MiB file system: %v, want insufficient_storage", len(written), full)
	}
	t.Logf("%d writes acknowledged, then: %v", len(written), full)

	stdout, _ := runBlock(t, blocks["disk-full-check"], map[string]string{"DATA": data})
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "/backups") {
		t.Fatalf("disk-full-check does not show the backups taking the most space:\n%s", stdout)
	}
	runBlock(t, blocks["disk-full"], map[string]string{"DATA": data})
	if left, _ := filepath.Glob(filepath.Join(data, "backups", "*.bundle")); len(left) != 1 {
		t.Fatalf("backups left: %v, want the newest only", left)
	}
	if err := put(); err != nil {
		t.Fatalf("a write after the runbook: %v", err)
	}
	for id, content := range written {
		got, err := c.Get(context.Background(), id)
		if err != nil || got.Content != content {
			t.Fatalf("%s after the runbook: %v", id, err)
		}
	}
	stopServe(p)
	servesAll(t, data, written)
}

// runbookQuorum: two of three members stop; the survivor refuses
// writes with no_quorum; the block starts one of them again with its
// flags and waits for a leader; writes resume, and every acknowledged
// one is read through both running members.
func runbookQuorum(t *testing.T, blocks map[string]runbookBlock) {
	nodes := newClusterNodes(t, 3, nil, nil)
	for _, n := range nodes {
		n.start()
	}
	all := []string{"n1", "n2", "n3"}
	waitSettled(t, nodes[0], "3 members and a leader", all...)
	leader := waitWritable(t, nodes, "a leader taking writes")
	written := map[string]string{}
	for i := range 5 {
		content := fmt.Sprint("before the outage ", i)
		written[put(t, nodes[i%3], content)] = content
	}
	waitSettled(t, nodes[0], "the writes on every node", all...)
	var survivor *clusterNode
	var stopped []*clusterNode
	for _, n := range nodes {
		if n.id != leader && survivor == nil {
			survivor = n
			continue
		}
		stopped = append(stopped, n)
	}
	for _, n := range stopped {
		n.stop(syscall.SIGTERM)
	}
	waitFor(t, time.Minute, survivor.id+" to know no leader", func() bool {
		st := clusterStatus(survivor)
		return st != nil && st.Leader == ""
	})
	if out, code := survivor.cli("put", "during the outage"); code != 1 || !strings.Contains(out, "(no_quorum)") {
		t.Fatalf("a write without a quorum: exit %d, want 1 and no_quorum:\n%s", code, out)
	}
	vars := map[string]string{"NEXUS_SERVER": survivor.url(), "NEXUS_TOKEN": clusterToken}
	stdout, _ := runBlock(t, blocks["quorum-check"], vars)
	if !strings.Contains(stdout, "leader: none known") {
		t.Fatalf("quorum-check printed:\n%s", stdout)
	}

	back := stopped[0]
	vars["DATA"], vars["FLAGS"] = back.data, strings.Join(back.args, " ")
	runBlock(t, blocks["quorum"], vars)
	pid := serverPid(back.data)
	if pid == 0 || !alive(pid) {
		t.Fatalf("the block started no server on %s:\n%s", back.data, readFile(filepath.Join(back.data, "serve.log")))
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // an external process, not our child
		}
	})
	content := "after the quorum came back"
	written[put(t, survivor, content)] = content
	for id, content := range written {
		for _, n := range []*clusterNode{survivor, back} {
			if out := mustCLI(t, n, "get", id); !strings.Contains(out, content) {
				t.Fatalf("get %s through %s:\n%s", id, n.id, out)
			}
		}
	}
}

// readFile is a file's contents, or why it could not be read.
func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// runbookQuorumLost: two of three members are gone for good; the block
// backs the stopped survivor up and restores it into a new data
// directory, which serves every write the cluster acknowledged and
// takes new ones as a single node.
func runbookQuorumLost(t *testing.T, blocks map[string]runbookBlock) {
	nodes := newClusterNodes(t, 3, nil, nil)
	for _, n := range nodes {
		n.start()
	}
	all := []string{"n1", "n2", "n3"}
	waitSettled(t, nodes[0], "3 members and a leader", all...)
	waitWritable(t, nodes, "a leader taking writes")
	written := map[nexus.ID]string{}
	for i := range 5 {
		content := fmt.Sprint("before the loss ", i)
		id, err := nexus.ParseID(put(t, nodes[i%3], content))
		if err != nil {
			t.Fatal(err)
		}
		written[id] = content
	}
	waitSettled(t, nodes[0], "the writes on every node", all...)
	for _, n := range nodes {
		n.stop(syscall.SIGTERM)
	}
	survivor := nodes[2]
	newData := filepath.Join(t.TempDir(), "data")
	stdout, _ := runBlock(t, blocks["quorum-lost"], map[string]string{"DATA": survivor.data, "BACKUPS": t.TempDir(), "NEW_DATA": newData})
	if !strings.Contains(stdout, "restored 5 contexts") {
		t.Fatalf("quorum-lost printed:\n%s", stdout)
	}
	servesAll(t, newData, written)
	p := startServe(t, newData, "--no-search", "--backup-interval=0")
	defer stopServe(p)
	putMany(t, p.url, 3, "after the loss")
}
