package quality

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
)

//go:embed data/*/docs.jsonl data/*/questions.jsonl
var data embed.FS

// Doc is one document of a set.
type Doc struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Question is one question and the ids of the documents that answer it.
type Question struct {
	Q       string   `json:"q"`
	Answers []string `json:"answers"`
}

// Set is a labelled evaluation set.
type Set struct {
	Name      string
	Docs      []Doc
	Questions []Question
}

// HeldOut reports whether question i (from 0) of a set is held out of
// tuning: every third question, the 3rd, 6th, 9th…
func HeldOut(i int) bool { return i%3 == 2 }

// Split selects questions of a set.
type Split int

// Splits.
const (
	Tune         Split = iota // the questions tuning may look at
	HeldOutSplit              // the questions it may not
	All                       // both
)

func (s Split) String() string {
	switch s {
	case Tune:
		return "tune"
	case HeldOutSplit:
		return "held-out"
	}
	return "all"
}

// Has reports whether question i belongs to the split.
func (s Split) Has(i int) bool {
	switch s {
	case Tune:
		return !HeldOut(i)
	case HeldOutSplit:
		return HeldOut(i)
	}
	return true
}

// Sets loads the committed evaluation sets, sorted by name. It fails if a
// question names a document the set does not have.
func Sets() ([]*Set, error) {
	dirs, err := fs.ReadDir(data, "data")
	if err != nil {
		return nil, err
	}
	var sets []*Set
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		s := &Set{Name: d.Name()}
		if err := readJSONL(path.Join("data", s.Name, "docs.jsonl"), func(dec *json.Decoder) error {
			var doc Doc
			err := dec.Decode(&doc)
			s.Docs = append(s.Docs, doc)
			return err
		}); err != nil {
			return nil, err
		}
		if err := readJSONL(path.Join("data", s.Name, "questions.jsonl"), func(dec *json.Decoder) error {
			var q Question
			err := dec.Decode(&q)
			s.Questions = append(s.Questions, q)
			return err
		}); err != nil {
			return nil, err
		}
		if err := s.check(); err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	slices.SortFunc(sets, func(a, b *Set) int { return cmpString(a.Name, b.Name) })
	return sets, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Set) check() error {
	ids := make(map[string]bool, len(s.Docs))
	for _, d := range s.Docs {
		if d.ID == "" || d.Text == "" || ids[d.ID] {
			return fmt.Errorf("set %s: document %q is empty or repeated", s.Name, d.ID)
		}
		ids[d.ID] = true
	}
	if len(s.Questions) == 0 {
		return fmt.Errorf("set %s has no questions", s.Name)
	}
	for i, q := range s.Questions {
		if q.Q == "" || len(q.Answers) == 0 {
			return fmt.Errorf("set %s: question %d has no text or no answers", s.Name, i+1)
		}
		for _, a := range q.Answers {
			if !ids[a] {
				return fmt.Errorf("set %s: question %d (%q) names %q, which is not a document of the set", s.Name, i+1, q.Q, a)
			}
		}
	}
	return nil
}

// readJSONL decodes one JSON value per line of an embedded file.
func readJSONL(name string, each func(*json.Decoder) error) error {
	b, err := data.ReadFile(name)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := each(dec); err != nil {
			return fmt.Errorf("%s:%d: %v", name, n, err)
		}
	}
	return sc.Err()
}
