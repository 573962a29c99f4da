package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// runNoopServer is `nexus bench noop-server`, the ceiling of
// `nexus bench report`: an HTTP server on a loopback port that does what
// POST /v1/contexts does minus the node. It reads the body, decodes it as
// a draft as strictly as the API does (unknown fields refused) and answers
// 201 with a small JSON object holding a new id, committing nothing. It
// prints "nexus listening on URL" like `nexus serve` and runs until ctx is
// done (SIGINT).
func runNoopServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench noop-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: noopHandler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "nexus listening on http://%s (no-op)\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// noopHandler answers POST /v1/contexts without storing anything.
func noopHandler() http.Handler {
	var mu sync.Mutex
	var gen nexus.IDGenerator
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/contexts", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			noopFail(w, err)
			return
		}
		var d nexus.Draft
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			noopFail(w, err)
			return
		}
		mu.Lock()
		id := gen.New(time.Now())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/v1/contexts/"+id.String())
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "{\"id\":%q}\n", id.String())
	})
	return mux
}

// noopFail answers a body that does not decode as the API would: 400
// with a JSON error and its code.
func noopFail(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "{\"error\":{\"code\":%q,\"message\":%s}}\n", nexus.EInvalid, strconv.Quote(err.Error()))
}

// startNoopServer runs this binary's `bench noop-server` verb as a child
// process, like the real server, and waits until it listens.
func startNoopServer(ctx context.Context) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startChild(ctx, exe, "bench", "noop-server")
}
