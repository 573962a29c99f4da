package mcpserver

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/nexus-mem/nexus"
)

// typeSchemas are the schemas of types the reflection cannot see through.
var typeSchemas = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[time.Time]():       {Type: "string", Format: "date-time"},
	reflect.TypeFor[json.RawMessage](): {Type: "object"},
}

// schemaFor derives the JSON schema of T from its fields and their
// jsonschema tags (the descriptions), then lets edit refine the
// properties (enums, bounds, defaults, patterns). A schema that cannot be
// derived is a bug of this package, so it panics.
func schemaFor[T any](edit func(p props)) *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: typeSchemas})
	if err != nil {
		panic(fmt.Sprintf("mcpserver: schema of %T: %v", *new(T), err))
	}
	noNull(s)
	if edit != nil {
		edit(props{s})
	}
	return s
}

// noNull drops the "null" the reflection allows for slices and pointers:
// the tools never send null and need not receive it (an absent property
// says the same).
func noNull(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	if len(s.Types) == 2 && s.Types[0] == "null" {
		s.Type, s.Types = s.Types[1], nil
	}
	for _, p := range s.Properties {
		noNull(p)
	}
	noNull(s.Items)
	noNull(s.AdditionalProperties)
}

// props edits the properties of an object schema.
type props struct{ s *jsonschema.Schema }

// get returns the property name, which must exist.
func (p props) get(name string) *jsonschema.Schema {
	prop, ok := p.s.Properties[name]
	if !ok {
		panic("mcpserver: no property " + name)
	}
	return prop
}

// of returns the schema of the items of array property name.
func (p props) of(name string) props { return props{p.get(name).Items} }

// enum restricts a string property to values.
func (p props) enum(name string, values ...string) {
	prop := p.get(name)
	prop.Enum = make([]any, len(values))
	for i, v := range values {
		prop.Enum[i] = v
	}
}

// bounds sets the inclusive range of a number property.
func (p props) bounds(name string, min, max float64) {
	prop := p.get(name)
	prop.Minimum, prop.Maximum = &min, &max
}

// def sets the default of a property.
func (p props) def(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	p.get(name).Default = b
}

// outputID marks string properties as ids in their canonical form.
func (p props) outputID(names ...string) {
	for _, n := range names {
		p.get(n).Pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
	}
}

// time marks string properties as RFC 3339 times.
func (p props) time(names ...string) {
	for _, n := range names {
		p.get(n).Format = "date-time"
	}
}

// contextType restricts property name to the context types.
func (p props) contextType(name string) {
	p.enum(name, typeNames()...)
}

// scalarValues makes the values of object property name scalars, as
// metadata filters compare.
func (p props) scalarValues(name string) {
	p.get(name).AdditionalProperties = &jsonschema.Schema{Types: []string{"string", "number", "boolean", "null"}}
}

func typeNames() []string {
	s := make([]string, len(nexus.Types))
	for i, t := range nexus.Types {
		s[i] = string(t)
	}
	return s
}

func ptr[T any](v T) *T { return &v }
