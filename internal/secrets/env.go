package secrets

import (
	"os"
	"strings"
)

// passed are the variables a child inherits from the server's
// environment: what finding programs, the home directory, the language
// and the time zone need. Nothing else passes unless listed.
var passed = []string{"PATH", "HOME", "LANG", "TZ"}

// Inherited reports whether the variable name passes from the server's
// environment to a child: PATH, HOME, LANG, TZ and the LC_* locale
// variables.
func Inherited(name string) bool {
	for _, p := range passed {
		if name == p {
			return true
		}
	}
	return strings.HasPrefix(name, "LC_")
}

// ChildEnv returns the environment of a child process: the inherited
// variables of the server's environment (see [Inherited]) followed by
// listed, KEY=VALUE entries that are added or override. Nothing else of
// the server's environment (its token, provider keys) reaches the child.
func ChildEnv(listed ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if Inherited(name) {
			env = append(env, kv)
		}
	}
	return append(env, listed...)
}
