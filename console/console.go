// Package console serves the node's web console: one HTML page and the
// plain ES modules, styles and vendored chart library it loads, embedded
// in the binary (no build step, no CDN, works offline). The page talks to
// the node only through its public API (/v1/..., /health, /metrics and
// the /v1/events stream), with the caller's own credentials, so it can do
// nothing the API would not let the same principal do; the files
// themselves hold no data of the store.
//
// [Handler] answers GET / with the page and GET /console/<file> with the
// embedded files, under a Content-Security-Policy that allows only the
// node's own scripts, styles and connections (no inline script, no
// eval, no framing). docs/CONSOLE.md describes the pages.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy of every answer of [Handler].
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

//go:embed assets
var embedded embed.FS

// file is one embedded file, ready to serve.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// files are the embedded files by their path under assets/.
var files = func() map[string]file {
	m := map[string]file{}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		m[strings.TrimPrefix(p, "assets/")] = file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading the embedded assets: " + err.Error())
	}
	return m
}()

// Handler serves the console: GET (or HEAD) / is the page, GET
// /console/<file> an embedded file. Every answer carries [CSP] and is
// revalidated by the browser on each load (an ETag makes that a 304), so
// a new binary's files are picked up at once. Any other path or method
// answers a JSON error, as the API does.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid", "method "+clip(r.Method)+" is not allowed on the console's files; allowed: GET, HEAD")
		return
	}
	name := "index.html"
	if r.URL.Path != "/" {
		rest, ok := strings.CutPrefix(r.URL.Path, "/console/")
		if !ok || rest == "" || path.Clean("/"+rest) != "/"+rest {
			writeError(w, http.StatusNotFound, "not_found", "no console file at "+clip(r.URL.Path))
			return
		}
		name = rest
	}
	f, ok := files[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no console file at "+clip(r.URL.Path))
		return
	}
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	// http.ServeContent answers If-None-Match with 304 and HEAD without a
	// body; the zero time leaves Last-Modified out (the ETag is enough).
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}

// writeError writes the API's error body: {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]map[string]string{"error": {"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "…"
}
