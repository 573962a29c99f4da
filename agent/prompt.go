package agent

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// DefaultPromptBudget is the size in bytes of the rendered chain that
// [BuildPrompt] keeps by default: about 16,000 tokens.
const DefaultPromptBudget = 64 << 10

// DefaultSystem is the system prompt of [Agent.Process] for an agent whose
// configuration gives none.
const DefaultSystem = "You are an agent working in a shared memory of contexts. " +
	"The user message is a thread of contexts, oldest first, each headed by its type and author. " +
	"Answer the last one."

// BuildPrompt renders chain, as [nexus.Store.Chain] returns it (newest
// first), into the text of one message, oldest first:
//
//	--- instruction by alice ---
//	Summarize the design.
//
//	--- result by writer ---
//	...
//
// The text is at most budget bytes (0: [DefaultPromptBudget]). The newest
// contexts are kept: older ones that do not fit are left out, which a first
// line "[N older contexts left out]" says, and the newest context alone
// is cut short, with a note, if it does not fit (the first line is then
// left out too). Nil entries are skipped.
func BuildPrompt(chain []*nexus.Context, budget int) string {
	if budget <= 0 {
		budget = DefaultPromptBudget
	}
	parts, cut, all := fitChain(chain, budget)
	if all || cut {
		return joinNewestFirst(nil, parts)
	}
	note := omittedNote(len(chain))
	withNote, cut, _ := fitChain(chain, budget-len(note)-len(partSep))
	if cut {
		return joinNewestFirst(nil, parts)
	}
	kept := len(withNote)
	for _, c := range chain {
		if c == nil {
			kept++
		}
	}
	return joinNewestFirst([]string{omittedNote(len(chain) - kept)}, withNote)
}

const partSep = "\n\n"

func omittedNote(n int) string {
	if n == 1 {
		return "[1 older context left out]"
	}
	return fmt.Sprintf("[%d older contexts left out]", n)
}

// fitChain renders the newest contexts of chain that fit in budget bytes,
// newest first, cutting the newest if it alone is too long (cut); all
// reports whether every context fit.
func fitChain(chain []*nexus.Context, budget int) (parts []string, cut, all bool) {
	used := 0
	for _, c := range chain {
		if c == nil {
			continue
		}
		part := renderContext(c)
		need := len(part)
		if len(parts) > 0 {
			need += len(partSep)
		}
		if used+need > budget {
			if len(parts) == 0 {
				return []string{cutPart(part, budget)}, true, false
			}
			return parts, false, false
		}
		parts = append(parts, part)
		used += need
	}
	return parts, false, true
}

func renderContext(c *nexus.Context) string {
	agent := c.AgentID
	if agent == "" {
		agent = nexus.DefaultAgent
	}
	return fmt.Sprintf("--- %s by %s ---\n%s", c.Type, agent, c.Content)
}

// cutPart keeps the head of part within budget bytes, with a note of
// what was cut.
func cutPart(part string, budget int) string {
	note := fmt.Sprintf("\n[… %d bytes cut]", len(part))
	if budget <= len(note) {
		return cutUTF8(part, budget)
	}
	head := cutUTF8(part, budget-len(note))
	return head + fmt.Sprintf("\n[… %d bytes cut]", len(part)-len(head))
}

// cutUTF8 returns the longest prefix of s of at most n bytes that does not
// split a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// joinNewestFirst returns head, then parts in reverse order, separated by
// blank lines.
func joinNewestFirst(head, parts []string) string {
	all := append([]string(nil), head...)
	for i := len(parts) - 1; i >= 0; i-- {
		all = append(all, parts[i])
	}
	return strings.Join(all, partSep)
}

// estimateTokens guesses the tokens of p at four bytes a token.
func estimateTokens(p Prompt) int {
	n := len(p.System)
	for _, m := range p.Messages {
		n += len(m.Content) + len(m.Role)
	}
	return n/4 + 1
}
