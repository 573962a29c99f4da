// Package secrets keeps the node's secrets in: the minimal environment
// that child processes (command agents, supervised processes) are started
// with, and the checks that a file holding secrets (an agent's secrets
// file, the token file) is private to the user who runs Nexus.
//
// The redaction of secrets from text that leaves the node is
// [nexus.Redactor].
package secrets
