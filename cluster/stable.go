package cluster

import (
	"sync"

	"github.com/hashicorp/raft"
)

// stableStore is raft's stable store over the bolt database, closed
// before the database is. raft v1.7 can still run a heartbeat on a
// transport goroutine after Shutdown returned (hashicorp/raft#717); if it
// saves a newer term once the database is closed, raft panics ("failed
// to save current term: database not open"). Close waits for the calls
// in flight; a term saved after it is dropped: the node has stopped, and
// it learns the term again from the next heartbeat after a restart (a
// vote is saved by raft's main loop, which Shutdown has ended).
type stableStore struct {
	mu     sync.RWMutex
	closed bool
	s      raft.StableStore
}

func (st *stableStore) Set(key, val []byte) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.closed {
		return nil
	}
	return st.s.Set(key, val)
}

func (st *stableStore) Get(key []byte) ([]byte, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.s.Get(key)
}

func (st *stableStore) SetUint64(key []byte, val uint64) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.closed {
		return nil
	}
	return st.s.SetUint64(key, val)
}

func (st *stableStore) GetUint64(key []byte) (uint64, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.s.GetUint64(key)
}

// close waits for the calls in flight and drops every later save.
func (st *stableStore) close() {
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
}
