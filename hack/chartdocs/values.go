package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// docMarker opens a value's description in the comment above it, as
// helm-docs has it: "# -- text", continued by the comment lines below it.
// "# -- (type) text" names the type where the default cannot show it (an
// empty string that must be given, an object that is empty by default).
const docMarker = "--"

// value is one documented value of values.yaml: a row of the table.
type value struct {
	Key         string // dotted path: webhook.failurePolicy
	Type        string // string, int, bool, list, object, or the comment's (type)
	Default     string // the value as JSON
	Description string
}

// parseValues reads the documented values of a values.yaml, in file order.
// A key whose comment holds the marker is a value, whatever it holds; a
// mapping without one is a section, whose keys are read in turn; any
// other key without one is an error, so that no value goes undocumented.
func parseValues(data []byte) ([]value, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing the values: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	var out []value
	var errs []error
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			key := prefix + k.Value
			text, ok := description(k.HeadComment)
			switch {
			case ok:
				row, err := newValue(key, text, v)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, row)
			case v.Kind == yaml.MappingNode && len(v.Content) > 0:
				walk(key+".", v)
			default:
				errs = append(errs, fmt.Errorf("line %d: %s has no %q comment above it", k.Line, key, "# "+docMarker))
			}
		}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the values are not a mapping")
	}
	walk("", root)
	return out, errors.Join(errs...)
}

// description is the text of comment from its marker on, in one line, and
// whether it has the marker.
func description(comment string) (string, bool) {
	var parts []string
	found := false
	for _, line := range strings.Split(comment, "\n") {
		line = strings.TrimSpace(line)
		text, isComment := strings.CutPrefix(line, "#")
		if !isComment {
			// A blank line ends a block: only the block above the key counts.
			parts, found = nil, false
			continue
		}
		text = strings.TrimSpace(text)
		if rest, ok := strings.CutPrefix(text, docMarker); ok && (rest == "" || rest[0] == ' ') {
			parts, found = []string{strings.TrimSpace(rest)}, true
			continue
		}
		if found {
			parts = append(parts, text)
		}
	}
	return strings.TrimSpace(strings.Join(parts, " ")), found
}

func newValue(key, text string, node *yaml.Node) (value, error) {
	var v any
	if err := node.Decode(&v); err != nil {
		return value{}, fmt.Errorf("line %d: %s: %w", node.Line, key, err)
	}
	var def bytes.Buffer
	enc := json.NewEncoder(&def)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return value{}, fmt.Errorf("line %d: %s: %w", node.Line, key, err)
	}
	row := value{Key: key, Type: typeOf(v), Default: strings.TrimSpace(def.String()), Description: text}
	if rest, ok := strings.CutPrefix(text, "("); ok {
		if typ, desc, ok := strings.Cut(rest, ")"); ok && typ != "" && !strings.Contains(typ, " ") {
			row.Type, row.Description = typ, strings.TrimSpace(desc)
		}
	}
	if row.Description == "" {
		return value{}, fmt.Errorf("line %d: %s has an empty description", node.Line, key)
	}
	return row, nil
}

func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int, int64, uint64:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// table is the values as a Markdown table.
func table(values []value) string {
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n")
	for _, v := range values {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.Key, v.Type, code(v.Default), cell(v.Description))
	}
	return b.String()
}

// code is s as inline code in a table cell: its pipes escaped, and
// backticks inside it fenced by doubled ones.
func code(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// cell is Markdown text for a table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
