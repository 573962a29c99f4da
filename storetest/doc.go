// Package storetest checks implementations of [nexus.Store] against the
// contract, and provides [MemStore], an in-memory reference implementation.
//
// # Basics
//
// [Run] is one conformance suite for every store: the on-disk store, the
// HTTP client talking to a server, a cluster. Each subtest opens a fresh,
// empty store with the function it is given:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) nexus.Store {
//			return storetest.NewMemStore()
//		})
//	}
//
// [MemStore] follows the contract exactly (validation, parent rules, strictly
// increasing ids and timestamps, filters, cursor paging, a journal), so it
// serves as the store behind tests of packages that need one.
//
// # Caveats
//
// MemStore keeps everything in memory and forgets it when dropped; its
// journal commit hashes are derived from the context ids and name no git
// object. The suite assumes the store's clock is within a minute of the
// test's, and that a Put whose context is already cancelled stores nothing.
package storetest
