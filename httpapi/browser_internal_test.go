package httpapi

import (
	"encoding/json"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/nexus-mem/nexus"
)

// addrParts gives for a TCP address what parsing its text gives.
func TestAddrParts_TCPLikeText(t *testing.T) {
	byText := func(a net.Addr) (netip.Addr, string) {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, ""
		}
		return ap.Addr(), strconv.Itoa(int(ap.Port()))
	}
	for _, a := range []*net.TCPAddr{
		{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
		{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 80},
		{IP: net.ParseIP("::1"), Port: 443},
		{IP: net.ParseIP("fe80::1"), Port: 7600, Zone: "eth0"},
		{IP: net.ParseIP("10.1.2.3"), Port: 65535},
		{Port: 8080},
	} {
		gotIP, gotPort := addrParts(a)
		wantIP, wantPort := byText(a)
		if gotIP.Unmap() != wantIP.Unmap() || gotPort != wantPort {
			t.Errorf("addrParts(%v) = %v, %q; from its text %v, %q", a, gotIP, gotPort, wantIP, wantPort)
		}
	}
	u := &net.UnixAddr{Name: "/tmp/x.sock", Net: "unix"}
	if ip, port := addrParts(u); ip.IsValid() || port != "" {
		t.Errorf("addrParts(%v) = %v, %q", u, ip, port)
	}
}

// The drafts clients send are decoded by scanDraft, not handed on to the
// reflecting decoders (which give the same drafts: FuzzDecodeDraft_FastIsStrict).
func TestScanDraft_takesCommonDrafts(t *testing.T) {
	parent, err := nexus.ParseID("01ARZ3NDEKTSV4RRFFQ69G5FAV")
	if err != nil {
		t.Fatal(err)
	}
	for body, want := range map[string]nexus.Draft{
		`{"type":"observation","content":"agent memory","agent_id":"bench-7","namespace":"bench"}`: {
			Type: "observation", Content: "agent memory", AgentID: "bench-7", Namespace: "bench"},
		` { "namespace" : "a/b" , "type" : "code", "content":"line 1\nline 2\t\"q\" \\ \/ \u00e9\u2028 日本",
		   "metadata": {"k": [1, 2.5e3, null, "}"], "n": {"x": true}}, "parent_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } `: {
			Namespace: "a/b", Type: "code", Content: "line 1\nline 2\t\"q\" \\ / é\u2028 日本",
			Metadata: json.RawMessage(`{"k": [1, 2.5e3, null, "}"], "n": {"x": true}}`), ParentID: parent},
		`{"metadata":null,"content":""}`:   {Metadata: json.RawMessage("null")},
		`{"metadata":"s","type":"\u0041"}`: {Metadata: json.RawMessage(`"s"`), Type: "A"},
		`{}`:                               {},
	} {
		got, ok := scanDraft([]byte(body))
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("scanDraft(%s) = %+v, %v; want %+v", body, got, ok, want)
		}
	}
	for _, body := range []string{
		`{"content":"\ud83d\ude00"}`, `{"content":null}`, `{"Type":"a"}`, `{"type":"a","type":"b"}`, `{"parent_id":""}`,
		`{"metadata":{"a":}}`, `{"metadata":tru}`, `{"content":"x"} {}`, "{\"content\":\"a\tb\"}", `{"content":"\x"}`,
	} {
		if d, ok := scanDraft([]byte(body)); ok {
			t.Errorf("scanDraft(%s) took it: %+v", body, d)
		}
	}
}
