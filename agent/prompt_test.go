package agent_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

func TestBuildPrompt(t *testing.T) {
	ch := chain(3)
	full := "--- instruction by alice ---\ncontext 1 of the thread\n\n" +
		"--- result by writer ---\ncontext 2 of the thread\n\n" +
		"--- instruction by alice ---\ncontext 3 of the thread"
	if got := agent.BuildPrompt(ch, 0); got != full {
		t.Errorf("BuildPrompt =\n%s\nwant\n%s", got, full)
	}
	if got := agent.BuildPrompt(append([]*nexus.Context{nil}, ch...), len(full)); got != full {
		t.Errorf("with a nil entry and an exact budget:\n%s", got)
	}
	// One byte short: the oldest goes, and a note says so.
	got := agent.BuildPrompt(ch, len(full)-1)
	want := "[1 older context left out]\n\n--- result by writer ---\ncontext 2 of the thread\n\n--- instruction by alice ---\ncontext 3 of the thread"
	if got != want {
		t.Errorf("one byte short:\n%s\nwant\n%s", got, want)
	}
	// The newest alone is too long: its head is kept.
	long := []*nexus.Context{{Type: nexus.TypeCode, Content: strings.Repeat("x", 1000)}, ch[0]}
	got = agent.BuildPrompt(long, 200)
	if len(got) > 200 || !strings.HasPrefix(got, "--- code by anonymous ---\nxxx") || !strings.HasSuffix(got, "\n[… 847 bytes cut]") {
		t.Errorf("too long (%d bytes):\n%s", len(got), got)
	}
}

// Whatever the chain and the budget, the prompt fits, is valid UTF-8,
// keeps the newest context's start, and keeps the order.
func TestBuildPrompt_Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"é", "日本", "x", "🙂", "word", "\n", " "}
	for range 2000 {
		n := 1 + rng.IntN(12)
		ch := make([]*nexus.Context, n)
		for i := range ch {
			var b strings.Builder
			fmt.Fprintf(&b, "<%d>", i)
			for range rng.IntN(60) {
				b.WriteString(words[rng.IntN(len(words))])
			}
			ch[i] = &nexus.Context{Type: nexus.TypeMemory, AgentID: "a", Content: b.String()}
		}
		budget := 48 + rng.IntN(600)
		got := agent.BuildPrompt(ch, budget)
		if len(got) > budget || !utf8.ValidString(got) || !strings.Contains(got, "--- memory by a ---\n<0>") {
			t.Fatalf("budget %d: %d bytes, valid %v:\n%q", budget, len(got), utf8.ValidString(got), got)
		}
		newest := "--- memory by a ---\n" + ch[0].Content
		if !strings.HasSuffix(got, newest) && !strings.HasSuffix(got, "bytes cut]") {
			t.Fatalf("budget %d: the newest context is neither whole nor cut:\n%q", budget, got)
		}
		// The markers <i> appear oldest (highest i) first.
		last := -1
		for i := len(ch) - 1; i >= 0; i-- {
			at := strings.Index(got, fmt.Sprintf("<%d>", i))
			if at >= 0 && at < last {
				t.Fatalf("contexts out of order:\n%q", got)
			}
			last = max(last, at)
		}
	}
}
