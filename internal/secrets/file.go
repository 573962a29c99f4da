package secrets

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"github.com/nexus-mem/nexus"
)

// MaxFileSize bounds the size of a secrets file.
const MaxFileSize = 64 << 10

// CheckFile checks that path, a file of secrets described by what ("the
// secrets file", "the token file"), is a regular file owned by the user
// running Nexus and that no other user may read or write (mode 0600 or
// stricter). Its errors have code invalid and say how to fix the file.
func CheckFile(what, path string) (fs.FileInfo, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInvalid, err, "cannot read %s %s: %v", what, path, pathCause(err))
	}
	if !info.Mode().IsRegular() {
		return nil, nexus.Errorf(nexus.EInvalid, "%s %s is not a regular file", what, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, nexus.Errorf(nexus.EInvalid,
			"%s %s may be read or written by other users (mode %04o); refusing to use it: run chmod 600 %s", what, path, perm, path)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, nexus.Errorf(nexus.EInvalid,
			"%s %s is owned by user id %d, not by the user running nexus (%d); refusing to use it: run chown %d %s",
			what, path, st.Uid, os.Geteuid(), os.Geteuid(), path)
	}
	if info.Size() > MaxFileSize {
		return nil, nexus.Errorf(nexus.EInvalid, "%s %s is larger than %d bytes", what, path, MaxFileSize)
	}
	return info, nil
}

// ReadFile checks path with [CheckFile] and returns its content. Errors
// never quote the content.
func ReadFile(what, path string) ([]byte, error) {
	if _, err := CheckFile(what, path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInvalid, err, "cannot read %s %s: %v", what, path, pathCause(err))
	}
	return data, nil
}

// ReadToken reads a token file: one line holding the token, surrounding
// white space ignored. The file must pass [CheckFile].
func ReadToken(path string) (string, error) {
	const what = "the token file"
	data, err := ReadFile(what, path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case tok == "":
		return "", nexus.Errorf(nexus.EInvalid, "%s %s is empty", what, path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", nexus.Errorf(nexus.EInvalid, "%s %s holds more than one line: it must hold the token alone", what, path)
	}
	return tok, nil
}

// pathCause drops the path that a *fs.PathError repeats.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// The environment variables of the node's token.
const (
	TokenEnv     = "NEXUS_TOKEN"      // the token itself (visible to every process of the user)
	TokenFileEnv = "NEXUS_TOKEN_FILE" // the path of a token file (see [ReadToken])
)

// TokenFromEnv returns the token the environment gives: read from the file
// NEXUS_TOKEN_FILE names, else NEXUS_TOKEN; "" when neither is set. Both
// set is an error, so that a forgotten variable is never used instead of
// the intended one.
func TokenFromEnv() (string, error) {
	file, tok := os.Getenv(TokenFileEnv), os.Getenv(TokenEnv)
	switch {
	case file != "" && tok != "":
		return "", nexus.Errorf(nexus.EInvalid, "both %s and %s are set: set only one (%s keeps the token out of the environment)", TokenEnv, TokenFileEnv, TokenFileEnv)
	case file != "":
		return ReadToken(file)
	}
	return strings.TrimSpace(tok), nil
}
