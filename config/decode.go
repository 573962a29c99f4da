package config

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// maxValues bounds the values one file may expand to, aliases included,
// so that a few lines of nested aliases cannot make the loader work for
// ever.
const maxValues = 100000

// decoder turns the parsed YAML into the typed configuration. It walks the
// syntax tree itself (the parser is goccy/go-yaml's) so that every problem
// is reported with its line and field path, all of them at once, and no
// value is converted behind the reader's back.
type decoder struct {
	file    string
	base    string         // directory relative paths are resolved against
	lines   map[string]int // field path → line where it is set
	anchors []anchor
	budget  int
	errs    Errors
}

// anchor is a named node (&name) that aliases (*name) refer to.
type anchor struct {
	name   string
	offset int
	node   ast.Node
}

func newDecoder(name string) (*decoder, error) {
	base, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("resolve the directory of %s: %w", name, err)
	}
	return &decoder{file: name, base: base, lines: map[string]int{}, budget: maxValues}, nil
}

// errorf records a problem with the field at path, on the line where the
// field (or, if it is absent, its nearest enclosing field) is written.
func (d *decoder) errorf(path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.lineOf(path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// errAt records a problem at a node.
func (d *decoder) errAt(n ast.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line(n), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// lineOf is the line of path or of its nearest recorded parent.
func (d *decoder) lineOf(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// set reports whether the file sets the field at path.
func (d *decoder) set(path string) bool {
	_, ok := d.lines[path]
	return ok
}

func line(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// decodeFile parses data and decodes its one document into c.
func (d *decoder) decodeFile(data []byte, c *Config) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.syntaxError(err)
		return
	}
	var docs []ast.Node
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc.Body)
		}
	}
	if len(docs) == 0 {
		return
	}
	if len(docs) > 1 {
		d.errAt(docs[1], "", "a configuration is one YAML document; this file holds %d", len(docs))
		return
	}
	d.collectAnchors(docs[0], 0)
	d.decode(docs[0], reflect.ValueOf(c).Elem(), "")
}

// syntaxError records a parse error at its position.
func (d *decoder) syntaxError(err error) {
	e := &Error{File: d.file, Msg: err.Error()}
	if ye, ok := err.(yaml.Error); ok {
		e.Msg = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil {
			e.Line = tk.Position.Line
		}
	}
	d.errs = append(d.errs, e)
}

// collectAnchors records every &name in the tree, including those under
// ignored x- keys.
func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 10000 {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil && v.Start != nil {
			d.anchors = append(d.anchors, anchor{name: v.Name.GetToken().Value, offset: v.Start.Position.Offset, node: v.Value})
		}
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			d.collectAnchors(mv, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(v.Key, depth+1)
		d.collectAnchors(v.Value, depth+1)
	case *ast.MappingKeyNode:
		d.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			d.collectAnchors(e, depth+1)
		}
	case *ast.TagNode:
		d.collectAnchors(v.Value, depth+1)
	}
}

// resolve looks through anchors, tags and aliases to the node that holds
// the value; nil stands for null. An alias that names no anchor before it
// is returned as bad.
func (d *decoder) resolve(n ast.Node) (node ast.Node, bad *ast.AliasNode) {
	for range 64 {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if n = d.alias(v); n == nil {
				return nil, v
			}
		case *ast.NullNode:
			return nil, nil
		default:
			return n, nil
		}
	}
	return nil, nil
}

// badAlias records an alias that names no anchor.
func (d *decoder) badAlias(a *ast.AliasNode, path string) {
	name := ""
	if a.Value != nil {
		name = a.Value.GetToken().Value
	}
	d.errAt(a, path, "alias *%s names no anchor defined before it", name)
}

// alias returns the node of the latest anchor named like a before it.
func (d *decoder) alias(a *ast.AliasNode) ast.Node {
	if a.Value == nil || a.Start == nil {
		return nil
	}
	name, at := a.Value.GetToken().Value, a.Start.Position.Offset
	var found ast.Node
	for _, an := range d.anchors {
		if an.name == name && an.offset < at {
			found = an.node
		}
	}
	return found
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// decode sets v from node n; path names v in messages.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errAt(n, path, "the file expands to more than %d values (through aliases)", maxValues)
		}
		return
	}
	r, bad := d.resolve(n)
	if bad != nil {
		d.badAlias(bad, path)
		return
	}
	if r == nil {
		return // null: the field keeps its default
	}
	switch {
	case v.Type() == durationType:
		d.decodeDuration(r, v, path)
	case v.Type() == sizeType:
		d.decodeSize(r, v, path)
	case v.Kind() == reflect.String:
		if s, ok := scalar(r); ok {
			v.SetString(s)
			if looksLikeKey(s) {
				d.errAt(r, path, "%s", msgKeyValue)
			}
		} else {
			d.errAt(r, path, "must be a single value, not %s", kind(r))
		}
	case v.Kind() == reflect.Bool:
		d.decodeBool(r, v, path)
	case v.Kind() == reflect.Int:
		d.decodeInt(r, v, path)
	case v.Kind() == reflect.Float64:
		d.decodeFloat(r, v, path)
	case v.Kind() == reflect.Slice:
		d.decodeList(r, v, path)
	case v.Kind() == reflect.Map:
		d.decodeMap(r, v, path)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(r, v, path)
	default:
		d.errAt(r, path, "cannot hold a value (a field of kind %s)", v.Kind())
	}
}

// scalar returns the text of a scalar node as written.
func scalar(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// kind names a node's kind for messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	if s, ok := scalar(n); ok {
		return strconv.Quote(s)
	}
	return "a " + n.Type().String()
}

func (d *decoder) decodeDuration(n ast.Node, v reflect.Value, path string) {
	s, ok := scalar(n)
	if !ok {
		d.errAt(n, path, "%s is not a duration (e.g. 30s)", kind(n))
		return
	}
	if s == "0" {
		v.SetInt(0)
		return
	}
	t, err := time.ParseDuration(s)
	if _, isString := n.(*ast.StringNode); err != nil || !isString {
		d.errAt(n, path, "%q is not a duration (e.g. 30s)", s)
		return
	}
	v.SetInt(int64(t))
}

func (d *decoder) decodeSize(n ast.Node, v reflect.Value, path string) {
	s, ok := scalar(n)
	if !ok {
		d.errAt(n, path, "%s is not a size (e.g. 10MiB)", kind(n))
		return
	}
	sz, err := ParseSize(s)
	if err != nil {
		d.errAt(n, path, "%v", err)
		return
	}
	v.SetInt(int64(sz))
}

func (d *decoder) decodeBool(n ast.Node, v reflect.Value, path string) {
	b, ok := n.(*ast.BoolNode)
	if !ok {
		d.errAt(n, path, "%s is not true or false", kind(n))
		return
	}
	v.SetBool(b.Value)
}

func (d *decoder) decodeInt(n ast.Node, v reflect.Value, path string) {
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.errAt(n, path, "%s is not a whole number", kind(n))
		return
	}
	var i int64
	switch x := in.Value.(type) {
	case int64:
		i = x
	case uint64:
		i = math.MaxInt64
		if x < math.MaxInt32 {
			i = int64(x)
		}
	}
	if i > math.MaxInt32 || i < math.MinInt32 {
		d.errAt(n, path, "%s is out of range", in.GetToken().Value)
		return
	}
	v.SetInt(i)
}

func (d *decoder) decodeFloat(n ast.Node, v reflect.Value, path string) {
	switch x := n.(type) {
	case *ast.IntegerNode:
		f, err := strconv.ParseFloat(x.GetToken().Value, 64)
		if err == nil {
			v.SetFloat(f)
			return
		}
	case *ast.FloatNode:
		v.SetFloat(x.Value)
		return
	}
	d.errAt(n, path, "%s is not a number", kind(n))
}

func (d *decoder) decodeList(n ast.Node, v reflect.Value, path string) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errAt(n, path, "%s is not a list", kind(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(seq.Values))
	for i, e := range seq.Values {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = line(e)
		item := reflect.New(v.Type().Elem()).Elem()
		setDefaults(item)
		d.decode(e, item, p)
		out = reflect.Append(out, item)
	}
	v.Set(out)
}

// setDefaults fills a fresh list entry with its defaults.
func setDefaults(v reflect.Value) {
	switch p := v.Addr().Interface().(type) {
	case *Agent:
		*p = DefaultAgent()
	case *Process:
		*p = DefaultProcess()
	}
}

func (d *decoder) decodeMap(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errAt(n, path, "%s is not a mapping", kind(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(m.Values)))
	}
	d.mergeAll(m, v, path)
	for _, mv := range m.Values {
		if mv.Key.IsMergeKey() {
			continue
		}
		key, ok := d.key(mv, path)
		if !ok {
			continue
		}
		p := path + "." + key
		d.lines[p] = line(mv.Key)
		item := reflect.New(v.Type().Elem()).Elem()
		d.decode(mv.Value, item, p)
		v.SetMapIndex(reflect.ValueOf(key), item)
	}
}

// key returns the text of a mapping key; a key that is not a plain value
// is an error.
func (d *decoder) key(mv *ast.MappingValueNode, path string) (string, bool) {
	k := ast.Node(mv.Key)
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		k = mk.Value
	}
	r, bad := d.resolve(k)
	if bad != nil {
		d.badAlias(bad, path)
		return "", false
	}
	if s, ok := scalar(r); ok {
		return s, true
	}
	d.errAt(mv, path, "a key must be a single value")
	return "", false
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errAt(n, path, "%s is not a mapping", kind(n))
		return
	}
	fields := yamlFields(v.Type())
	d.mergeAll(m, v, path)
	for _, mv := range m.Values {
		if mv.Key.IsMergeKey() {
			continue
		}
		key, ok := d.key(mv, path)
		if !ok {
			continue
		}
		p := join(path, key)
		idx, known := fields[key]
		switch {
		case known:
			d.lines[p] = line(mv.Key)
			d.decode(mv.Value, v.Field(idx), p)
		case path == "" && strings.HasPrefix(key, "x-"):
			// an extension key: holds anchors, ignored
		case isCredentialName(key):
			d.errAt(mv.Key, p, "an API key is never written in the configuration file: name the environment variable that holds it with api_key_env, or a file that holds it with secrets_file")
		default:
			d.errAt(mv.Key, p, "unknown field (known: %s)", strings.Join(sortedKeys(fields), ", "))
		}
	}
}

// mergeAll applies the merge keys (<<: *anchor) of m to v, the last
// source first, so that the mapping's own keys (decoded afterwards) and
// earlier sources win, as YAML says.
func (d *decoder) mergeAll(m *ast.MappingNode, v reflect.Value, path string) {
	for i := len(m.Values) - 1; i >= 0; i-- {
		if m.Values[i].Key.IsMergeKey() {
			d.merge(m.Values[i], v, path)
		}
	}
}

// merge decodes the mapping(s) named by a merge key into v.
func (d *decoder) merge(mv *ast.MappingValueNode, v reflect.Value, path string) {
	src, bad := d.resolve(mv.Value)
	if bad != nil {
		d.badAlias(bad, path)
		return
	}
	var sources []ast.Node
	switch s := src.(type) {
	case *ast.MappingNode:
		sources = []ast.Node{s}
	case *ast.SequenceNode:
		sources = s.Values
	default:
		d.errAt(mv, path, "<< must name a mapping or a list of mappings")
		return
	}
	for i := len(sources) - 1; i >= 0; i-- {
		d.decode(sources[i], v, path)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml names of a struct's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
