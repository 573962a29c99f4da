package gitstore

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// checkScan asserts scanContext's contract on b: when it answers, the full
// decode accepts b and gives the same fields.
func checkScan(t *testing.T, b []byte) (accepted bool) {
	t.Helper()
	f, ok := scanContext(b)
	if !ok {
		return false
	}
	c, err := decodeContext(b)
	if err != nil {
		t.Fatalf("scan accepted %q, the full decode refuses it: %v", b, err)
	}
	got := fmt.Sprintf("%s %s %d %q %q %q", f.id, f.parent, f.ts, f.ns, f.typ, f.agent)
	want := fmt.Sprintf("%s %s %d %q %q %q", c.ID, c.ParentID, c.Timestamp.UnixNano(), c.Namespace, c.Type, c.AgentID)
	if got != want {
		t.Fatalf("scan of %q gives %s, the full decode %s", b, got, want)
	}
	return true
}

func sampleContext(r *rand.Rand) *nexus.Context {
	var gen nexus.IDGenerator
	ts := time.Unix(1700000000+r.Int64N(1e8), r.Int64N(1e9)).UTC()
	c := &nexus.Context{
		ID: gen.New(ts), Namespace: []string{"default", "team-a", "ops.x"}[r.IntN(3)],
		Type: nexus.TypeObservation, AgentID: []string{"fill", "worker-7", "agent é"}[r.IntN(3)],
		Timestamp: ts, Content: []string{"plain", "quote \" backslash \\ tab \t nl \n", "<html> & é ☃ \u2028", ""}[r.IntN(4)],
		Metadata: json.RawMessage([]string{`{}`, `{"ticket":"T-1","topic":3,"n":-1.5e3,"a":[true,false,null,{"x":"\u00e9"}]}`, `[]`}[r.IntN(3)]),
	}
	if r.IntN(2) == 0 {
		c.ParentID = gen.New(ts.Add(-time.Second))
	}
	if r.IntN(2) == 0 {
		c.Principal = "key:ci"
	}
	c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
	return c
}

// Blobs as the store writes them take the fast path, and it agrees with
// the full decode.
func TestScanContext_Canonical(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b, err := encodeContext(sampleContext(r))
		if err != nil {
			t.Fatal(err)
		}
		if !checkScan(t, b) {
			t.Fatalf("canonical blob declined: %s", b)
		}
	}
}

// Blobs outside the canonical form are declined or agree; never accepted
// where the full decode refuses or differs.
func TestScanContext_Variants(t *testing.T) {
	const id, parent, ts = `"01JDQ8X7ZK1M5C7V4PQ3R2S9TA"`, `"01JDQ8X7ZK1M5C7V4PQ3R2S9TB"`, `"2026-01-02T03:04:05.123456789Z"`
	base := `{"id":` + id + `,"namespace":"default","type":"memory","agent_id":"a","parent_id":` + parent + `,"timestamp":` + ts + `,"semantic_hash":"x","metadata":{},"content":"c"}`
	accept := []string{
		base,
		base + "\n",
		" \t\r\n" + base + " \n",
		strings.ReplaceAll(base, `":`, `" : `),
		`{"timestamp":` + ts + `,"agent_id":"a","type":"memory","namespace":"default","id":` + id + `}`,
		strings.Replace(base, `"metadata":{}`, `"metadata":[1,-0,0.5,1e5,1E-5,"\u00e9\"",{"a":{"b":[]}}]`, 1),
		strings.Replace(base, ts, `"2026-01-02T03:04:05+02:00"`, 1),
	}
	for _, s := range accept {
		if !checkScan(t, []byte(s)) {
			t.Errorf("declined: %s", s)
		}
	}
	decline := []string{
		``, `{}`, `[]`, `null`, base[:len(base)-1],
		base + `x`,                               // trailing data (the decoder ignores it)
		strings.Replace(base, `"id"`, `"ID"`, 1), // case-insensitive match
		strings.Replace(base, `"content":"c"`, `"content":"c","id":`+id, 1), // a key twice
		strings.Replace(base, `"content":"c"`, `"content":"c","extra":1`, 1),
		strings.Replace(base, `"agent_id":"a"`, `"agent_id":"a\u0062"`, 1),     // an escape in a kept string
		strings.Replace(base, `"agent_id":"a"`, `"agent_id":"a`+"\xff"+`"`, 1), // invalid UTF-8 in a kept string
		strings.Replace(base, `"agent_id":"a"`, `"agent_id":null`, 1),
		strings.Replace(base, `"content":"c"`, `"content":null`, 1),
		strings.Replace(base, `"content":"c"`, `"content":5`, 1),
		strings.Replace(base, `"content":"c"`, `"content":"a`+"\n"+`"`, 1),
		strings.Replace(base, `"content":"c"`, `"content":"\x"`, 1),
		strings.Replace(base, `"metadata":{}`, `"metadata":01`, 1),
		strings.Replace(base, `"metadata":{}`, `"metadata":{"a":1,}`, 1),
		strings.Replace(base, `"metadata":{}`, `"metadata":1.`, 1),
		strings.Replace(base, `"metadata":{}`, `"metadata":tru`, 1),
		strings.Replace(base, `"metadata":{}`, `"metadata":`+strings.Repeat("[", 100)+strings.Repeat("]", 100), 1),
		strings.Replace(base, id, `"not-an-id"`, 1),
		strings.Replace(base, parent, `""`, 1),
		strings.Replace(base, ts, `"2026-01-02 03:04:05Z"`, 1),
		strings.Replace(base, ts, `"2026-01-02T03:04:05\u005a"`, 1),
		strings.Replace(base, `"id":`+id+`,`, ``, 1),
		strings.Replace(base, `"timestamp":`+ts+`,`, ``, 1),
	}
	for _, s := range decline {
		if checkScan(t, []byte(s)) {
			t.Errorf("accepted: %q", s)
		}
	}
}

// FuzzScanContext checks the contract on arbitrary input.
func FuzzScanContext(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20; i++ {
		b, err := encodeContext(sampleContext(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"id":"01JDQ8X7ZK1M5C7V4PQ3R2S9TA","namespace":"x","type":"y","agent_id":"z","timestamp":"2026-01-02T03:04:05Z","metadata":[{"a":-1e-3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) { checkScan(t, b) })
}

// special8's lowest mark is the first byte strSpecial marks, in any
// eight bytes.
func FuzzSpecial8(f *testing.F) {
	f.Add(uint64(0x2020202020202020))
	f.Add(uint64(0x5c22001f20ff7f80))
	f.Add(uint64(0x8081825c61626364))
	f.Fuzz(func(t *testing.T, x uint64) { checkSpecial8(t, x) })
}

func checkSpecial8(t *testing.T, x uint64) {
	want := 8
	for i := range 8 {
		if strSpecial[byte(x>>(8*i))] {
			want = i
			break
		}
	}
	got := 8
	if m := special8(x); m != 0 {
		got = bits.TrailingZeros64(m) >> 3
	}
	if got != want {
		t.Fatalf("special8(%#016x): first special byte %d, want %d", x, got, want)
	}
}

// Every byte value at every place, over a background of each byte value.
func TestSpecial8(t *testing.T) {
	for bg := range 256 {
		for c := range 256 {
			for i := range 8 {
				x := uint64(bg) * 0x0101010101010101
				x = x&^(0xff<<(8*i)) | uint64(c)<<(8*i)
				checkSpecial8(t, x)
			}
		}
	}
	r := rand.New(rand.NewPCG(9, 9))
	for range 100000 {
		checkSpecial8(t, r.Uint64())
	}
}

// The scan of blobs as `nexus bench report` fills its big store (512
// bytes of words as content).
//
//	go test -run '^$' -bench ScanContext ./gitstore/
func BenchmarkScanContext(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	var blobs [][]byte
	for range 1000 {
		c := sampleContext(r)
		c.Content, c.Metadata = wordText(r, 512), json.RawMessage(`{}`)
		blob, err := encodeContext(c)
		if err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, blob)
	}
	c0 := cpuTime()
	for b.Loop() {
		for _, blob := range blobs {
			if _, ok := scanContext(blob); !ok {
				b.Fatal("declined")
			}
		}
	}
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*len(blobs)), "cpu-ns/blob")
}
