package main

import (
	"bytes"
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
// also answers GET /v1/contexts/{id}, for any id, with the bytes the API
// would send for a context of --size content bytes written by the
// report's load (the floor of a read). It prints "nexus listening on URL"
// like `nexus serve` and runs until ctx is done (SIGINT).
func runNoopServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench noop-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	size := fs.Int("size", 512, "content bytes of the context GET answers")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *size < 0 || *size > nexus.DefaultMaxContent {
		return fmt.Errorf("--size %d is out of range 0..%d", *size, nexus.DefaultMaxContent)
	}
	get, err := floorContext(*size)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: noopHandler(get), ReadHeaderTimeout: 10 * time.Second}
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

// noopHandler answers POST /v1/contexts without storing anything, and
// GET /v1/contexts/{id} with the bytes get, whatever the id.
func noopHandler(get []byte) http.Handler {
	var mu sync.Mutex
	var gen nexus.IDGenerator
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/contexts/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(get)
	})
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

// floorContext is the JSON the API answers GET with for a context that
// `nexus bench report` seeds (content of size bytes, no agent, no
// credential): the same fields, the same encoding (HTML characters
// unescaped, one trailing newline), so the same length.
func floorContext(size int) ([]byte, error) {
	var gen nexus.IDGenerator
	now := time.Now().UTC()
	c := nexus.Context{ID: gen.New(now), Namespace: "bench", Type: nexus.TypeObservation, AgentID: nexus.Anonymous.Name,
		Timestamp: now, Metadata: json.RawMessage("{}"), Content: benchPayload(size), Principal: nexus.Anonymous.Name}
	c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startNoopServer runs this binary's `bench noop-server` verb as a child
// process, like the real server, and waits until it listens; its GET
// answers a context of size content bytes.
func startNoopServer(ctx context.Context, size int) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startChild(ctx, exe, "bench", "noop-server", "--size", strconv.Itoa(size))
}
