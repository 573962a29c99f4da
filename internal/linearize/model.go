package linearize

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// partition groups the operations that key accepts by their key, in the
// order each key first appears; operations key rejects are left out.
func partition(h []porcupine.Operation, key func(in Input) (string, bool)) [][]porcupine.Operation {
	index := make(map[string]int)
	var parts [][]porcupine.Operation
	for _, op := range h {
		k, ok := key(op.Input.(Input))
		if !ok {
			continue
		}
		i, seen := index[k]
		if !seen {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	return parts
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// RegisterModel is the model of contexts read by id: one write-once register
// per id. Writes and reads are partitioned by id and lists are left out.
//
// The state of a partition is the content written under its id, empty while
// nothing is. A write is legal only while the register is empty (the store
// never assigns one id twice) and fills it with the write's token. A read
// that found nothing is legal only while the register is empty, a read that
// found content only when the register holds exactly that content: once a
// write is linearized every later read must see it, and no read may see it
// before. A write whose id is unknown (its outcome unknown and its token never
// found) is its own partition: nothing observed it.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			return partition(h, func(in Input) (string, bool) {
				switch in.Kind {
				case KindWrite:
					if in.ID.IsZero() {
						return "token " + in.Token, true
					}
					return in.ID.String(), true
				case KindRead:
					return in.ID.String(), true
				}
				return "", false
			})
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(string), input.(Input), output.(Output)
			switch in.Kind {
			case KindWrite:
				if s != "" {
					return false, s
				}
				return true, in.Token
			case KindRead:
				if out.Found {
					return s != "" && s == out.Content, s
				}
				return s == "", s
			}
			return false, s
		},
		Hash: func(state any) uint64 { return hashString(state.(string)) },
		DescribeOperation: func(input, output any) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string {
			if s := state.(string); s != "" {
				return fmt.Sprintf("%q", s)
			}
			return "empty"
		},
	}
}

// NamespaceModel is the model of namespaces listed whole: one growing set of
// contents per namespace. Writes and lists are partitioned by namespace and
// reads are left out.
//
// The state of a partition is the set of tokens written to the namespace. A
// write adds its token; a list is legal only when the contents it returned
// are exactly that set, each once: a listing must hold every write
// linearized before it and none after. The order of a listing is not checked
// (ids follow the clock of the node that assigned them, which need not be
// the order in which writes were linearized across nodes).
//
// The checker's work grows exponentially with the operations in flight at
// once within a partition, and every write whose outcome is unknown stays
// in flight to the end: keep namespaces small (a few dozen writes each),
// spread a run over several of them, and give up on few writes.
func NamespaceModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			return partition(h, func(in Input) (string, bool) {
				if in.Kind == KindWrite || in.Kind == KindList {
					return in.Namespace, true
				}
				return "", false
			})
		},
		Init: func() any { return &tokenSet{} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(*tokenSet), input.(Input), output.(Output)
			switch in.Kind {
			case KindWrite:
				return s.add(in.Token)
			case KindList:
				return s.equals(out.Tokens), s
			}
			return false, s
		},
		Equal: func(a, b any) bool {
			x, y := a.(*tokenSet), b.(*tokenSet)
			return x.hash == y.hash && slices.Equal(x.tokens, y.tokens)
		},
		Hash: func(state any) uint64 { return state.(*tokenSet).hash },
		DescribeOperation: func(input, output any) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string {
			return "{" + strings.Join(state.(*tokenSet).tokens, ", ") + "}"
		},
	}
}

// tokenSet is a state of [NamespaceModel]: the tokens written, sorted, and
// the sum of their hashes (so adding one costs no rehash). It is never
// changed once made.
type tokenSet struct {
	tokens []string
	hash   uint64
}

// add returns the set with tok added; false if tok is already in it.
func (s *tokenSet) add(tok string) (bool, *tokenSet) {
	i, present := slices.BinarySearch(s.tokens, tok)
	if present {
		return false, s
	}
	return true, &tokenSet{tokens: slices.Insert(slices.Clip(s.tokens), i, tok), hash: s.hash + hashString(tok)}
}

// equals says whether tokens, in any order, are exactly the set, each once.
func (s *tokenSet) equals(tokens []string) bool {
	if len(tokens) != len(s.tokens) {
		return false
	}
	if !slices.IsSorted(tokens) {
		tokens = slices.Clone(tokens)
		slices.Sort(tokens)
	}
	return slices.Equal(tokens, s.tokens)
}
