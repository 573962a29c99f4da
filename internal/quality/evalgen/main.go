// Command evalgen extracts the documents of the search quality evaluation
// sets under internal/quality/data from text available offline:
//
//   - gostd: the package documentation of part of Go's standard library
//     (one document per exported function, type or method), read from
//     $(go env GOROOT)/src with go/doc;
//   - nexusdocs: this repository's docs/*.md and README.md, split into
//     sections at their headings (long sections into pieces at paragraph
//     ends);
//   - debian: the descriptions of the Debian packages installed on the
//     machine (/var/lib/dpkg/status), one document per package.
//
// It writes DIR/<set>/docs.jsonl, one {"id","text"} object a line, sorted
// by id. The questions (questions.jsonl) are written by hand and are not
// touched. Run from the repository's root:
//
//	go run ./internal/quality/evalgen [-out internal/quality/data] [-sets gostd,nexusdocs,debian]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

type document struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// maxText bounds a document's text, in bytes.
const maxText = 1600

func main() {
	out := flag.String("out", "internal/quality/data", "directory of the sets")
	sets := flag.String("sets", "gostd,nexusdocs,debian", "sets to extract")
	goroot := flag.String("goroot", "", "Go's root, for gostd (default: what `go env GOROOT` prints)")
	status := flag.String("dpkg-status", "/var/lib/dpkg/status", "dpkg's status file, for debian")
	flag.Parse()
	if *goroot == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "evalgen: go env GOROOT:", err)
			os.Exit(1)
		}
		*goroot = strings.TrimSpace(string(out))
	}
	for _, s := range strings.Split(*sets, ",") {
		var docs []document
		var err error
		switch s {
		case "gostd":
			docs, err = goStd(*goroot)
		case "nexusdocs":
			docs, err = nexusDocs(".")
		case "debian":
			docs, err = debian(*status)
		default:
			err = fmt.Errorf("unknown set %q", s)
		}
		if err == nil {
			err = write(filepath.Join(*out, s, "docs.jsonl"), docs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "evalgen:", err)
			os.Exit(1)
		}
		fmt.Printf("%s: %d documents\n", s, len(docs))
	}
}

func write(path string, docs []document) error {
	slices.SortFunc(docs, func(a, b document) int { return strings.Compare(a.ID, b.ID) })
	docs = slices.CompactFunc(docs, func(a, b document) bool { return a.ID == b.ID })
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// clip cuts text to maxText bytes at a word boundary.
func clip(text string) string {
	text = strings.TrimSpace(text)
	if len(text) <= maxText {
		return text
	}
	cut := strings.LastIndexAny(text[:maxText], " \n")
	if cut < maxText/2 {
		cut = maxText
	}
	return strings.TrimSpace(text[:cut])
}

// goPackages are the standard library packages of the gostd set.
var goPackages = []string{
	"bufio", "bytes", "compress/gzip", "container/heap", "context", "crypto/rand", "crypto/sha256",
	"encoding/base64", "encoding/csv", "encoding/json", "errors", "fmt", "io", "math", "net/url",
	"os", "os/exec", "os/signal", "path/filepath", "regexp", "slices", "sort", "strconv", "strings",
	"sync", "time", "unicode/utf8",
}

func goStd(goroot string) ([]document, error) {
	var docs []document
	for _, path := range goPackages {
		dir := filepath.Join(goroot, "src", path)
		fset := token.NewFileSet()
		files := map[string]*ast.File{}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		var list []*ast.File
		for _, e := range ents {
			n := e.Name()
			if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			if build := buildConstrained(f); build {
				continue
			}
			files[n] = f
			list = append(list, f)
		}
		p, err := doc.NewFromFiles(fset, list, path)
		if err != nil {
			return nil, err
		}
		name := p.Name
		add := func(id, decl, text string) {
			text = strings.TrimSpace(text)
			if text == "" || strings.HasPrefix(text, "Deprecated:") {
				return
			}
			docs = append(docs, document{ID: path + "." + id, Text: clip(name + "." + id + ": " + decl + "\n" + text)})
		}
		sig := func(d ast.Decl) string {
			var b strings.Builder
			switch d := d.(type) {
			case *ast.FuncDecl:
				fd := *d
				fd.Body, fd.Doc = nil, nil
				printer.Fprint(&b, fset, &fd)
			case *ast.GenDecl:
				if len(d.Specs) == 1 {
					if ts, ok := d.Specs[0].(*ast.TypeSpec); ok {
						return "type " + ts.Name.Name
					}
				}
				return ""
			}
			return b.String()
		}
		for _, f := range p.Funcs {
			add(f.Name, sig(f.Decl), f.Doc)
		}
		for _, t := range p.Types {
			add(t.Name, sig(t.Decl), t.Doc)
			for _, f := range t.Funcs {
				add(f.Name, sig(f.Decl), f.Doc)
			}
			for _, m := range t.Methods {
				add(t.Name+"."+m.Name, sig(m.Decl), m.Doc)
			}
		}
	}
	return docs, nil
}

// buildConstrained reports whether f is built only on some platforms other
// than linux/amd64 (or only for tests or tools), judged by its
// //go:build line and file name.
func buildConstrained(f *ast.File) bool {
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			if line, ok := strings.CutPrefix(c.Text, "//go:build "); ok {
				return !strings.Contains(line, "linux") && !strings.Contains(line, "unix") && !strings.Contains(line, "!") ||
					strings.Contains(line, "ignore")
			}
		}
		if cg.Pos() > f.Package {
			break
		}
	}
	return false
}

var heading = regexp.MustCompile(`^(#{1,4})\s+(.*)$`)

func nexusDocs(root string) ([]document, error) {
	var paths []string
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	paths = append(paths, filepath.Join(root, "README.md"))
	var docs []document
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(filepath.Base(p), ".md")
		var title string
		var body []string
		seen := map[string]int{}
		flush := func() {
			for _, piece := range pieces(strings.Join(body, "\n")) {
				slug := base + "/" + slugify(title)
				seen[slug]++
				docs = append(docs, document{ID: fmt.Sprintf("%s/%d", slug, seen[slug]), Text: strings.TrimSpace(title + "\n" + piece)})
			}
			body = body[:0]
		}
		inCode := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "```") {
				inCode = !inCode
			}
			if m := heading.FindStringSubmatch(line); m != nil && !inCode {
				flush()
				title = m[2]
				continue
			}
			body = append(body, line)
		}
		flush()
	}
	return docs, nil
}

// slugify makes a heading an id: lowercase letters and digits, words
// joined by dashes, at most 40 bytes.
func slugify(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// pieces splits a section's text at paragraph ends into pieces of at most
// maxText bytes (a longer paragraph is clipped), dropping empty ones.
func pieces(text string) []string {
	var out []string
	var cur strings.Builder
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		if cur.Len() > 0 && cur.Len()+len(para)+2 > maxText {
			out = append(out, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteString("\n\n")
		}
		cur.WriteString(clip(para))
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

func debian(status string) ([]document, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return nil, err
	}
	var docs []document
	for _, stanza := range strings.Split(string(b), "\n\n") {
		var pkg, desc string
		lines := strings.Split(stanza, "\n")
		for i, line := range lines {
			if v, ok := strings.CutPrefix(line, "Package: "); ok {
				pkg = v
			}
			if v, ok := strings.CutPrefix(line, "Description: "); ok {
				var d strings.Builder
				d.WriteString(v)
				for _, l := range lines[i+1:] {
					if !strings.HasPrefix(l, " ") {
						break
					}
					l = strings.TrimSpace(l)
					if l == "." {
						l = ""
					}
					d.WriteString("\n" + l)
				}
				desc = d.String()
			}
		}
		if pkg != "" && desc != "" {
			docs = append(docs, document{ID: pkg, Text: clip(pkg + ": " + desc)})
		}
	}
	return docs, nil
}
