package secrets

import (
	"os"
	"slices"
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

// Resolve returns the value of a variable a configuration lists for a
// child: a value that is exactly ${NAME} (NAME a variable name) is the
// server's variable NAME, empty if unset; any other value is itself. ref
// reports whether the value was a reference.
func Resolve(value string) (v string, ref bool) {
	name, ok := Reference(value)
	if !ok {
		return value, false
	}
	return os.Getenv(name), true
}

// Reference returns NAME when value is exactly ${NAME}.
func Reference(value string) (string, bool) {
	inner, ok := strings.CutPrefix(value, "${")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(inner, "}")
	if !ok || !isName(name) {
		return "", false
	}
	return name, true
}

func isName(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// IsCredentialName reports whether an environment variable is named like
// one holding a credential (*_API_KEY, *_TOKEN, *_SECRET, *_PASSWORD, ...).
func IsCredentialName(name string) bool {
	n := strings.ToUpper(name)
	for _, suffix := range []string{"API_KEY", "APIKEY", "_TOKEN", "_SECRET", "_PASSWORD", "SECRET_KEY", "ACCESS_KEY"} {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return n == "TOKEN" || n == "SECRET" || n == "PASSWORD"
}

// ListedEnv resolves the variables a configuration lists for a child (see
// [Resolve]) into sorted KEY=VALUE entries. The values that references
// to credential-named variables gave are returned as secrets, for the
// node's [nexus.Redactor].
func ListedEnv(env map[string]string) (list, secret []string) {
	for k, v := range env {
		val, ref := Resolve(v)
		list = append(list, k+"="+val)
		if ref && IsCredentialName(k) && val != "" {
			secret = append(secret, val)
		}
	}
	slices.Sort(list)
	return list, secret
}
