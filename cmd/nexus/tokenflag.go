package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/nexus-mem/nexus/internal/secrets"
)

// tokenUsage is the help of every --token flag.
const tokenUsage = "bearer token; visible to other users in the process list (ps): prefer NEXUS_TOKEN_FILE, " +
	"a file of mode 0600 holding it (default: read from NEXUS_TOKEN_FILE, else NEXUS_TOKEN)"

// tokenWarning is printed when --token is given.
const tokenWarning = "warning: --token is visible to every user of this machine in the process list (ps); " +
	"put the token in a file of mode 0600 and set NEXUS_TOKEN_FILE to its path instead\n"

// tokenFlag adds --token to fs. After parse, *dst holds the flag's value
// (with a warning on stderr that it shows in ps), else the token the
// environment gives (NEXUS_TOKEN_FILE, else NEXUS_TOKEN); a token file
// that is not private, or both variables set, fail the parse.
func tokenFlag(fs *flag.FlagSet, dst *string, stderr io.Writer) {
	fs.StringVar(dst, "token", "", tokenUsage)
	afterParse(fs, func() error {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "token" })
		if set {
			fmt.Fprint(stderr, tokenWarning)
			return nil
		}
		tok, err := secrets.TokenFromEnv()
		if err != nil {
			return usageError{err}
		}
		*dst = tok
		return nil
	})
}

// hooks are run by parse after a flag set is parsed.
var hooks = struct {
	sync.Mutex
	m map[*flag.FlagSet][]func() error
}{m: map[*flag.FlagSet][]func() error{}}

// afterParse makes parse run h once fs is parsed.
func afterParse(fs *flag.FlagSet, h func() error) {
	hooks.Lock()
	defer hooks.Unlock()
	hooks.m[fs] = append(hooks.m[fs], h)
}

// runHooks runs (and forgets) the hooks of fs.
func runHooks(fs *flag.FlagSet) error {
	hooks.Lock()
	hs := hooks.m[fs]
	delete(hooks.m, fs)
	hooks.Unlock()
	for _, h := range hs {
		if err := h(); err != nil {
			return err
		}
	}
	return nil
}

// withToken returns environ without NEXUS_TOKEN and NEXUS_TOKEN_FILE,
// then the variable that hands token to a child nexus: NEXUS_TOKEN_FILE
// when the token came from that file, else NEXUS_TOKEN; none for "".
func withToken(environ []string, token string) []string {
	file := os.Getenv(secrets.TokenFileEnv)
	env := slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		return strings.HasPrefix(kv, secrets.TokenEnv+"=") || strings.HasPrefix(kv, secrets.TokenFileEnv+"=")
	})
	switch {
	case token == "":
		return env
	case file != "":
		if fromFile, err := secrets.ReadToken(file); err == nil && fromFile == token {
			return append(env, secrets.TokenFileEnv+"="+file)
		}
	}
	return append(env, secrets.TokenEnv+"="+token)
}
