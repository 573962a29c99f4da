package auth

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nexus-mem/nexus"
)

// MaxFileSize is the largest tokens file read.
const MaxFileSize = 4 << 20

// Entry is a principal as a tokens file stores it: everything but the
// token, of which only the SHA-256 is kept.
type Entry struct {
	Name        string     `json:"name"`
	Role        nexus.Role `json:"role"`
	Read        []string   `json:"read,omitempty"`
	Write       []string   `json:"write,omitempty"`
	TokenSHA256 string     `json:"token_sha256"`
	Created     time.Time  `json:"created,omitzero"`
}

// Principal is the principal e authenticates.
func (e *Entry) Principal() *nexus.Principal {
	return &nexus.Principal{Name: e.Name, Role: e.Role, Read: e.Read, Write: e.Write}
}

// validate checks e's principal and hash.
func (e *Entry) validate() error {
	if err := ValidatePrincipal(e.Principal()); err != nil {
		return err
	}
	if b, err := hex.DecodeString(e.TokenSHA256); err != nil || len(b) != 32 || HashToken("") == e.TokenSHA256 {
		return fmt.Errorf("principal %s: token_sha256 must be the 64 hex digits of the SHA-256 of a token", e.Name)
	}
	return nil
}

// File is a tokens file: a JSON object {"principals": [Entry...]}.
type File struct {
	Principals []Entry `json:"principals"`
}

// ParseFile decodes and checks a tokens file: strict JSON (no unknown
// fields, one object), every entry valid, names and hashes unique.
func ParseFile(data []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a tokens file: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a tokens file: more than one JSON value")
	}
	if err := checkEntries(f.Principals); err != nil {
		return nil, err
	}
	return &f, nil
}

// checkEntries validates each entry and refuses duplicates.
func checkEntries(es []Entry) error {
	names, hashes := map[string]bool{}, map[string]bool{}
	for i := range es {
		e := &es[i]
		if err := e.validate(); err != nil {
			return err
		}
		if names[e.Name] {
			return fmt.Errorf("principal %s is listed twice", e.Name)
		}
		if hashes[e.TokenSHA256] {
			return fmt.Errorf("principal %s has the token of another principal", e.Name)
		}
		names[e.Name], hashes[e.TokenSHA256] = true, true
	}
	return nil
}

// LoadFile reads the tokens file at path. A file that others may write
// is refused: whoever can write it can make themselves admin. With
// missingOK, a file that does not exist is an empty one.
func LoadFile(path string, missingOK bool) (*File, error) {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && missingOK {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("tokens file %s is writable by others (mode %04o): run chmod 600 on it", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read tokens file %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("tokens file %s is larger than %d bytes", path, MaxFileSize)
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return f, nil
}

// Save writes f to path atomically (a new file renamed over the old one),
// mode 0600, synced before and after the rename.
func (f *File) Save(path string) error {
	if err := checkEntries(f.Principals); err != nil {
		return err
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tokens file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save tokens file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*.json")
	if err != nil {
		return fmt.Errorf("save tokens file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, append(data, '\n')); err != nil {
		return fmt.Errorf("save tokens file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save tokens file: %w", err)
	}
	return syncDir(dir)
}

func writeSynced(fh *os.File, data []byte) error {
	err := fh.Chmod(0o600)
	if err == nil {
		_, err = fh.Write(data)
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Create adds a principal with a new token to f and returns the token,
// which is shown once and stored nowhere.
func (f *File) Create(p nexus.Principal, now time.Time) (string, error) {
	if slices.ContainsFunc(f.Principals, func(e Entry) bool { return e.Name == p.Name }) {
		return "", nexus.Errorf(nexus.EConflict, "principal %s exists: revoke it first to give it a new token", p.Name)
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	if err := CheckStrength(tok); err != nil {
		return "", err
	}
	e := Entry{Name: p.Name, Role: p.Role, Read: p.Read, Write: p.Write, TokenSHA256: HashToken(tok), Created: now.UTC()}
	if err := e.validate(); err != nil {
		return "", nexus.WrapError(nexus.EInvalid, err, "%v", err)
	}
	f.Principals = append(f.Principals, e)
	return tok, nil
}

// Revoke removes the principal named name from f.
func (f *File) Revoke(name string) error {
	i := slices.IndexFunc(f.Principals, func(e Entry) bool { return e.Name == name })
	if i < 0 {
		return nexus.Errorf(nexus.ENotFound, "no principal named %q", clip(name))
	}
	f.Principals = slices.Delete(f.Principals, i, i+1)
	return nil
}
