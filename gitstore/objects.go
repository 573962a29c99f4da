package gitstore

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hash is a git object id (SHA-1).
type Hash [20]byte

var zeroHash Hash

// String returns the 40-digit hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == zeroHash }

// ParseHash parses a 40-digit hex object id.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 40 {
		return h, fmt.Errorf("invalid object id %q", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("invalid object id %q", s)
	}
	return h, nil
}

// objType is a git object type as numbered in pack files.
type objType byte

const (
	objCommit   objType = 1
	objTree     objType = 2
	objBlob     objType = 3
	objTag      objType = 4
	objOfsDelta objType = 6
	objRefDelta objType = 7
)

func (t objType) String() string {
	switch t {
	case objCommit:
		return "commit"
	case objTree:
		return "tree"
	case objBlob:
		return "blob"
	case objTag:
		return "tag"
	}
	return "type" + strconv.Itoa(int(t))
}

// hashObject returns the git object id of data with type t.
func hashObject(t objType, data []byte) Hash {
	h := sha1.New()
	var hdr [32]byte
	b := append(hdr[:0], t.String()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, 0)
	h.Write(b)
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// treeEntry is one entry of a tree object.
type treeEntry struct {
	name string
	dir  bool
	hash Hash
}

const (
	modeDir  = "40000"
	modeFile = "100644"
)

// entryLess is git's tree order: names compare bytewise, with directory
// names compared as if they ended in '/'.
func entryLess(a string, aDir bool, b string, bDir bool) bool {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c < 0
	}
	ca, cb := nextByte(a, n, aDir), nextByte(b, n, bDir)
	return ca < cb
}

func nextByte(s string, i int, dir bool) int {
	if i < len(s) {
		return int(s[i])
	}
	if dir {
		return '/'
	}
	return 0
}

// encodeTree appends the canonical encoding of entries (already sorted).
func encodeTree(dst []byte, entries []treeEntry) []byte {
	for _, e := range entries {
		if e.dir {
			dst = append(dst, modeDir...)
		} else {
			dst = append(dst, modeFile...)
		}
		dst = append(dst, ' ')
		dst = append(dst, e.name...)
		dst = append(dst, 0)
		dst = append(dst, e.hash[:]...)
	}
	return dst
}

// decodeTree parses a tree object. Only regular files and directories are
// accepted: anything else was not written by Nexus.
func decodeTree(data []byte) ([]treeEntry, error) {
	var out []treeEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return nil, errors.New("tree entry without mode")
		}
		mode := string(data[:sp])
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul < 0 || len(data) < nul+21 {
			return nil, errors.New("truncated tree entry")
		}
		e := treeEntry{name: string(data[:nul])}
		copy(e.hash[:], data[nul+1:nul+21])
		data = data[nul+21:]
		switch mode {
		case modeDir:
			e.dir = true
		case modeFile, "100755":
		default:
			return nil, fmt.Errorf("tree entry %q has unsupported mode %s", e.name, mode)
		}
		if e.name == "" || strings.ContainsRune(e.name, '/') || e.name == "." || e.name == ".." {
			return nil, fmt.Errorf("tree entry has invalid name %q", e.name)
		}
		out = append(out, e)
	}
	return out, nil
}

// signature is a git author or committer line.
type signature struct {
	name, email string
	when        time.Time
}

func appendSignature(dst []byte, s signature) []byte {
	return appendIdent(dst, s.name, s.email, "", s.when.Unix())
}

// appendIdent appends "name <email+suffix> unix +0000": a signature whose
// email may be built from two parts without joining them first.
func appendIdent(dst []byte, name, email, suffix string, unix int64) []byte {
	dst = append(dst, name...)
	dst = append(dst, " <"...)
	dst = append(dst, email...)
	dst = append(dst, suffix...)
	dst = append(dst, "> "...)
	dst = strconv.AppendInt(dst, unix, 10)
	return append(dst, " +0000"...)
}

// commit is a decoded commit object.
type commit struct {
	tree      Hash
	parents   []Hash
	author    signature
	committer signature
	message   string
}

// encodeCommit appends the canonical encoding of c.
func encodeCommit(dst []byte, c *commit) []byte {
	dst = append(dst, "tree "...)
	dst = hex.AppendEncode(dst, c.tree[:])
	for _, p := range c.parents {
		dst = append(dst, "\nparent "...)
		dst = hex.AppendEncode(dst, p[:])
	}
	dst = append(dst, "\nauthor "...)
	dst = appendSignature(dst, c.author)
	dst = append(dst, "\ncommitter "...)
	dst = appendSignature(dst, c.committer)
	dst = append(dst, "\n\n"...)
	return append(dst, c.message...)
}

// decodeCommit parses a commit object.
func decodeCommit(data []byte) (*commit, error) {
	c := &commit{}
	hdr, msg, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, errors.New("commit has no message separator")
	}
	c.message = string(msg)
	seenTree := false
	for _, line := range strings.Split(string(hdr), "\n") {
		key, val, _ := strings.Cut(line, " ")
		var err error
		switch key {
		case "tree":
			c.tree, err = ParseHash(val)
			seenTree = true
		case "parent":
			var p Hash
			p, err = ParseHash(val)
			c.parents = append(c.parents, p)
		case "author":
			c.author, err = parseSignature(val)
		case "committer":
			c.committer, err = parseSignature(val)
		}
		if err != nil {
			return nil, fmt.Errorf("commit header %s: %w", key, err)
		}
	}
	if !seenTree {
		return nil, errors.New("commit has no tree")
	}
	return c, nil
}

func parseSignature(s string) (signature, error) {
	lt, gt := strings.IndexByte(s, '<'), strings.LastIndexByte(s, '>')
	if lt < 0 || gt < lt {
		return signature{}, fmt.Errorf("malformed signature %q", s)
	}
	sig := signature{name: strings.TrimSpace(s[:lt]), email: s[lt+1 : gt]}
	fields := strings.Fields(s[gt+1:])
	if len(fields) > 0 {
		sec, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return sig, fmt.Errorf("malformed signature time %q", fields[0])
		}
		sig.when = time.Unix(sec, 0).UTC()
	}
	return sig, nil
}

// trailers returns the "Key: value" lines of the last paragraph of msg.
func trailers(msg string) map[string]string {
	msg = strings.TrimRight(msg, "\n")
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(msg[i+2:], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil
		}
		out[k] = v
	}
	return out
}

// subject returns the first line of msg.
func subject(msg string) string {
	s, _, _ := strings.Cut(msg, "\n")
	return s
}
