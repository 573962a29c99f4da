package search

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/nexus-mem/nexus"
)

// The query language. A query is words that rank, and operators that
// constrain which contexts may be hits:
//
//	"exact phrase"     contexts whose content has these words in this order
//	-word, -"phrase"   contexts without the word (in any form the analyzer
//	                   folds to the same term) or the phrase
//	type:decision      the request's type; likewise namespace: (or ns:),
//	                   agent:, thread: and parent: (context ids) and
//	                   meta.KEY:VALUE (VALUE a JSON number, true, false or
//	                   null, else a string); a value may be quoted
//
// A word with a colon that names no field ("http://x", "12:30") is a word.
// The words of a phrase also rank.
type parsedQuery struct {
	text     string   // what ranks: the plain words and the phrases' words
	phrases  []string // required phrases
	excluded []string // excluded words and phrases
}

// queryFields are the field names of field:value terms.
var queryFields = []string{"type", "namespace", "ns", "agent", "thread", "parent"}

// parseQuery splits req.Query into its parts and moves its field terms
// into req's filters; a field term that contradicts a filter the request
// already has, an unterminated quote or a query with nothing to rank by
// is an EInvalid error.
func parseQuery(req *nexus.SearchRequest) (parsedQuery, error) {
	var pq parsedQuery
	var words []string
	q := req.Query
	for i := 0; i < len(q); {
		if isSpaceByte(q[i]) {
			i++
			continue
		}
		neg := q[i] == '-' && i+1 < len(q) && !isSpaceByte(q[i+1])
		start := i
		if neg {
			i++
		}
		if q[i] == '"' {
			end := strings.IndexByte(q[i+1:], '"')
			if end < 0 {
				return pq, nexus.Errorf(nexus.EInvalid, "query has an unterminated quote at byte %d", i)
			}
			phrase := q[i+1 : i+1+end]
			i += end + 2
			if strings.TrimSpace(phrase) == "" {
				continue
			}
			if neg {
				pq.excluded = append(pq.excluded, phrase)
			} else {
				pq.phrases = append(pq.phrases, phrase)
				words = append(words, phrase)
			}
			continue
		}
		tok := i
		for i < len(q) && !isSpaceByte(q[i]) {
			if q[i] == '"' && i > tok && q[i-1] == ':' { // field:"quoted value"
				end := strings.IndexByte(q[i+1:], '"')
				if end < 0 {
					return pq, nexus.Errorf(nexus.EInvalid, "query has an unterminated quote at byte %d", i)
				}
				i += end + 2
				continue
			}
			i++
		}
		word := q[tok:i]
		if !neg {
			if ok, err := fieldTerm(req, word); err != nil {
				return pq, err
			} else if ok {
				continue
			}
		}
		if neg {
			pq.excluded = append(pq.excluded, word)
		} else {
			words = append(words, q[start:i])
		}
	}
	pq.text = strings.Join(words, " ")
	if strings.TrimSpace(pq.text) == "" {
		return pq, nexus.Errorf(nexus.EInvalid, "query has no words to rank by, only operators (field terms, exclusions): add words")
	}
	return pq, nil
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// fieldTerm applies word to req if it is a field term, reporting whether
// it was one.
func fieldTerm(req *nexus.SearchRequest, word string) (bool, error) {
	name, value, ok := strings.Cut(word, ":")
	if !ok || value == "" {
		return false, nil
	}
	key, isMeta := strings.CutPrefix(name, "meta.")
	if !isMeta && !slices.Contains(queryFields, name) || isMeta && key == "" {
		return false, nil
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	conflict := func(have string) error {
		return nexus.Errorf(nexus.EInvalid, "the query's %s contradicts the request's %s %q", word, name, have)
	}
	set := func(dst *string) error {
		if *dst != "" && *dst != value {
			return conflict(*dst)
		}
		*dst = value
		return nil
	}
	setID := func(dst *nexus.ID) error {
		id, err := nexus.ParseID(value)
		if err != nil {
			return nexus.Errorf(nexus.EInvalid, "the query's %s: %q is not a context id", name, value)
		}
		if !dst.IsZero() && *dst != id {
			return conflict(dst.String())
		}
		*dst = id
		return nil
	}
	switch {
	case isMeta:
		var v any = value
		var x any
		if json.Unmarshal([]byte(value), &x) == nil {
			switch x.(type) {
			case float64, bool, nil:
				v = x
			}
		}
		if have, ok := req.Metadata[key]; ok && fmt.Sprint(have) != fmt.Sprint(v) {
			return true, conflict(fmt.Sprint(have))
		}
		m := make(map[string]any, len(req.Metadata)+1)
		for k, x := range req.Metadata {
			m[k] = x
		}
		m[key] = v
		req.Metadata = m
		return true, nil
	case name == "type":
		t := string(req.Type)
		err := set(&t)
		req.Type = nexus.Type(t)
		return true, err
	case name == "namespace" || name == "ns":
		return true, set(&req.Namespace)
	case name == "agent":
		return true, set(&req.AgentID)
	case name == "thread":
		return true, setID(&req.ThreadID)
	default: // parent
		return true, setID(&req.ParentID)
	}
}

// containsPhrase reports whether the terms of text hold phrase's terms
// consecutively.
func containsPhrase(text, phrase []string) bool {
	if len(phrase) == 0 {
		return true
	}
	for i := 0; i+len(phrase) <= len(text); i++ {
		if slices.Equal(text[i:i+len(phrase)], phrase) {
			return true
		}
	}
	return false
}

// Bounds of the work a phrase or an exclusion may cost.
const (
	// maxContaining bounds the contexts that have every word of a phrase
	// or of an exclusion.
	maxContaining = 1 << 21
	// maxVerify bounds the contexts read to check a phrase's word order.
	maxVerify = 20000
)

// constrain narrows a search to the contexts that have every phrase of
// pq, in order, and none of its exclusions: it returns the predicate to
// use and sets v.kept when the phrases decide the set.
func (e *Engine) constrain(ctx context.Context, pq parsedQuery, allow func(uint32) bool, v *view) (func(uint32) bool, error) {
	if len(pq.phrases) == 0 && len(pq.excluded) == 0 {
		return allow, nil
	}
	n := uint32(len(v.docs))
	if allow == nil {
		allow = func(o uint32) bool { return o < n }
	}
	var out []uint32 // excluded ordinals, ascending
	for _, x := range pq.excluded {
		keys, err := e.phraseKeys(ctx, x, allow, v)
		if err != nil {
			return nil, err
		}
		out = mergeSorted(out, keys)
	}
	keep := func(o uint32) bool {
		_, found := slices.BinarySearch(out, o)
		return allow(o) && !found
	}
	v.filtered = true
	if len(pq.phrases) == 0 {
		if v.narrowed {
			v.kept = slices.DeleteFunc(v.kept, func(o uint32) bool { return !keep(o) })
		}
		return keep, nil
	}
	var kept []uint32
	for i, p := range pq.phrases {
		keys, err := e.phraseKeys(ctx, p, keep, v)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			kept = keys
		} else {
			kept = intersectSorted(kept, keys)
		}
	}
	if v.narrowed {
		kept = intersectSorted(kept, v.kept)
	}
	v.kept, v.narrowed = kept, true
	return keep, nil
}

// phraseKeys returns the ordinals of v that allow keeps and whose content
// has the words of phrase in order, ascending.
func (e *Engine) phraseKeys(ctx context.Context, phrase string, allow func(uint32) bool, v *view) ([]uint32, error) {
	an := v.kw.Analyzer()
	terms := an.Analyze(phrase)
	keys, ok := v.kw.Containing(phrase, maxContaining)
	if !ok {
		return nil, nexus.Errorf(nexus.EInvalid, "the words of %q are in more than %d contexts: use rarer words", phrase, maxContaining)
	}
	keys = slices.DeleteFunc(keys, func(o uint32) bool { return !allow(o) })
	if len(terms) < 2 {
		return keys, nil
	}
	if len(keys) > maxVerify {
		return nil, nexus.Errorf(nexus.EInvalid, "the words of the phrase %q are in %d contexts, over the %d whose word order a search checks: add words or a filter", phrase, len(keys), maxVerify)
	}
	out := keys[:0]
	for _, o := range keys {
		c, err := e.src.Get(ctx, v.docs[o].id)
		if err != nil {
			if nexus.ErrorCode(err) == nexus.ENotFound {
				continue
			}
			return nil, err
		}
		if containsPhrase(an.Analyze(c.Content), terms) {
			out = append(out, o)
		}
	}
	return out, nil
}

// mergeSorted returns the union of two ascending lists, ascending.
func mergeSorted(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// intersectSorted returns the ordinals in both ascending lists.
func intersectSorted(a, b []uint32) []uint32 {
	var out []uint32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case b[j] < a[i]:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}
