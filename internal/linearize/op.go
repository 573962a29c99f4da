package linearize

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Kind is the kind of a recorded operation.
type Kind uint8

// The kinds of operations.
const (
	// KindWrite writes one context whose content is a token into a
	// namespace; the store answers with the id it assigned.
	KindWrite Kind = iota + 1
	// KindRead reads one context by id: found with its content, or not
	// found.
	KindRead
	// KindList lists the contents of every context of a namespace.
	KindList
)

// String returns "write", "read" or "list".
func (k Kind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindRead:
		return "read"
	case KindList:
		return "list"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Input is what a client asked. Build it with [Write], [Read] or [List].
type Input struct {
	Kind Kind
	// Namespace is the namespace written (KindWrite) or listed (KindList).
	Namespace string
	// Token is the content written (KindWrite). It must be unique among the
	// writes of a Recorder: it is how a write is recognised in what reads
	// and listings return.
	Token string
	// ID is the id read (KindRead). For a write it is the id the write is
	// known to have: the one the store answered, or for a write whose
	// outcome is unknown the one its token was found under (see
	// [Recorder.History]); zero when no id is known.
	ID nexus.ID
}

// Write is the input of a write of token into namespace ns.
func Write(ns, token string) Input { return Input{Kind: KindWrite, Namespace: ns, Token: token} }

// Read is the input of a read of the context id.
func Read(id nexus.ID) Input { return Input{Kind: KindRead, ID: id} }

// List is the input of a listing of namespace ns.
func List(ns string) Input { return Input{Kind: KindList, Namespace: ns} }

// Output is what the store answered. Build it with [Written], [Found],
// [NotFound] or [Listed]; Unknown is set by [Pending.Unknown].
type Output struct {
	// Unknown marks a write whose outcome the client never learned.
	Unknown bool
	// ID is the id the store assigned (KindWrite).
	ID nexus.ID
	// Found says whether the context exists (KindRead), and Content is its
	// content when it does.
	Found   bool
	Content string
	// Tokens are the contents of the namespace's contexts (KindList), one per
	// context, in any order.
	Tokens []string
}

// Written is the output of a write the store acknowledged with id.
func Written(id nexus.ID) Output { return Output{ID: id} }

// Found is the output of a read that found a context with this content.
func Found(content string) Output { return Output{Found: true, Content: content} }

// NotFound is the output of a read that found no context.
func NotFound() Output { return Output{} }

// Listed is the output of a listing that returned these contents, in any
// order (they are kept sorted, which makes the check cheaper).
func Listed(tokens ...string) Output {
	tokens = slices.Clone(tokens)
	slices.Sort(tokens)
	return Output{Tokens: tokens}
}

// describe renders an operation for the visualization.
func describe(in Input, out Output) string {
	switch in.Kind {
	case KindWrite:
		id := "?"
		if !in.ID.IsZero() {
			id = in.ID.String()
		}
		if out.Unknown {
			return fmt.Sprintf("write(%s, %q) -> unknown, id %s", in.Namespace, in.Token, id)
		}
		return fmt.Sprintf("write(%s, %q) -> %s", in.Namespace, in.Token, id)
	case KindRead:
		if out.Found {
			return fmt.Sprintf("read(%s) -> %q", in.ID, out.Content)
		}
		return fmt.Sprintf("read(%s) -> not found", in.ID)
	case KindList:
		return fmt.Sprintf("list(%s) -> {%s}", in.Namespace, strings.Join(out.Tokens, ", "))
	}
	return fmt.Sprintf("%v -> %v", in, out)
}
