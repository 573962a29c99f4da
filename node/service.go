package node

import (
	"context"
	"sync"
	"time"
)

// ServiceStats is what a background job of a node reports about itself,
// for /health and /metrics.
type ServiceStats struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	// Runs and Failures count the rounds of a periodic job.
	Runs     uint64 `json:"runs"`
	Failures uint64 `json:"failures"`
	// LastRun and LastSuccess are the ends of the last round and of the
	// last round that succeeded.
	LastRun     time.Time `json:"last_run,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the error of the last round, "" if it succeeded.
	LastError string `json:"last_error,omitempty"`
}

// service is one background job of a node: Start runs it in its own
// goroutine until Stop, which cancels it and waits until it has ended. A
// node starts its services in Open and stops them, in reverse order,
// before its store closes.
type service struct {
	name string
	run  func(ctx context.Context) // returns when ctx ends

	cancel context.CancelFunc
	done   chan struct{}

	// mu guards stats.
	mu    sync.Mutex
	stats ServiceStats
}

// newService is a job that runs until its context ends.
func newService(name string, run func(ctx context.Context)) *service {
	return &service{name: name, run: run}
}

// periodic is a job that calls round once per interval; each round's
// outcome goes into its stats.
func periodic(name string, interval time.Duration, round func(ctx context.Context) error) *service {
	s := &service{name: name}
	s.run = func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := round(ctx)
			if ctx.Err() != nil {
				return // stopped mid-round: not a failure of the job
			}
			s.record(err)
		}
	}
	return s
}

// Start runs the job; a second Start does nothing.
func (s *service) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	s.stats.Running = true
	go func() {
		defer close(s.done)
		s.run(ctx)
		s.mu.Lock()
		s.stats.Running = false
		s.mu.Unlock()
	}()
}

// Stop cancels the job and waits until it has ended. It may be called
// more than once, and on a job never started.
func (s *service) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}

// record counts one round of a periodic job.
func (s *service) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	s.stats.Runs++
	s.stats.LastRun = now
	if err != nil {
		s.stats.Failures++
		s.stats.LastError = err.Error()
		return
	}
	s.stats.LastError = ""
	s.stats.LastSuccess = now
}

// Stats reports the job.
func (s *service) Stats() ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Name = s.name
	return st
}
