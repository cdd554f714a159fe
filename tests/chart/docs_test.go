package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestReadmeAndSchemaFollowValues: the chart README's values table and values.schema.json
// describe exactly the keys of values.yaml. A key added to values.yaml without a README row or a
// schema entry, or a row for a key that no longer exists, fails here.
func TestReadmeAndSchemaFollowValues(t *testing.T) {
	for _, dir := range []string{schemahookDir, exampleAppDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var values map[string]any
			readYAML(t, filepath.Join(dir, "values.yaml"), &values)
			var schema map[string]any
			b, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
			if err != nil || json.Unmarshal(b, &schema) != nil {
				t.Fatalf("reading values.schema.json: %v", err)
			}
			rows := readmeRows(t, filepath.Join(dir, "README.md"))
			if len(rows) == 0 {
				t.Fatal("the README has no values table")
			}
			for _, row := range rows {
				if _, ok := lookup(values, row); !ok {
					t.Errorf("README row %s: no such key in values.yaml", row)
				}
				if !inSchema(schema, row) {
					t.Errorf("README row %s: no such property in values.schema.json", row)
				}
			}
			for _, leaf := range leaves(values, "") {
				if !slices.ContainsFunc(rows, func(r string) bool { return r == leaf || strings.HasPrefix(leaf, r+".") }) {
					t.Errorf("values.yaml key %s has no row in the README's values table", leaf)
				}
			}
		})
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// readmeRows returns the keys of the "| Key | Type | Default | Description |" table.
func readmeRows(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "| Key | Type | Default | Description |"):
			in = true
		case in && strings.HasPrefix(line, "|-"):
		case in && strings.HasPrefix(line, "| "):
			rows = append(rows, strings.TrimSpace(strings.Split(line, "|")[1]))
		default:
			in = false
		}
	}
	return rows
}

// lookup follows a dotted key through nested maps.
func lookup(m map[string]any, key string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(key, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// leaves lists the dotted keys of values that are not maps, and of empty maps.
func leaves(m map[string]any, prefix string) []string {
	var out []string
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			out = append(out, leaves(sub, prefix+k+".")...)
			continue
		}
		out = append(out, prefix+k)
	}
	slices.Sort(out)
	return out
}

// inSchema follows a dotted key through the schema's nested properties; an object without
// declared properties (free-form, e.g. resources) accepts anything below it.
func inSchema(schema map[string]any, key string) bool {
	cur := schema
	for _, part := range strings.Split(key, ".") {
		props, ok := cur["properties"].(map[string]any)
		if !ok {
			return cur["type"] == "object"
		}
		next, ok := props[part].(map[string]any)
		if !ok {
			return false
		}
		cur = next
	}
	return true
}
