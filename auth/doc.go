// Package auth holds the principals a node authenticates: bearer tokens
// (stored only as SHA-256 hashes, in a tokens file or the configuration
// file's auth section, plus NEXUS_TOKEN as one admin principal) and,
// optionally, JWTs signed by a key the node has on disk.
//
// A [Set] is the node's table of principals; [Set.Authenticate] maps a
// presented credential to its [nexus.Principal], and [Set.Reload] reads
// the sources again (the server does on SIGHUP), keeping the old table if
// the new one does not load.
//
// Why SHA-256 and not a slow password hash: every token is at least 128
// bits of randomness (tokens made by [NewToken] carry 256), so a leaked
// hash cannot be reversed by guessing however fast the hash is; slow
// hashes (bcrypt, Argon2id) protect low-entropy passwords, and would cost
// tens of milliseconds on every request. [CheckStrength] refuses weak
// tokens when they are made, when NEXUS_TOKEN is loaded, and whenever one
// is presented, so a hand-written hash of a weak token never matches.
package auth
