package chart_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestReadmeIsGenerated: each chart's README.md is what `make chart-docs` (helm-docs) generates
// from its README.md.gotmpl and the `# --` comments in values.yaml. A README edited by hand, or a
// value changed without regenerating, fails here; run `make chart-docs`.
func TestReadmeIsGenerated(t *testing.T) {
	work := t.TempDir()
	for _, dir := range []string{schemahookDir, exampleAppDir} {
		copyDir(t, dir, filepath.Join(work, filepath.Base(dir)))
	}
	cmd := exec.Command("../../scripts/chart-docs.sh", work)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/chart-docs.sh: %v\n%s", err, out)
	}
	for _, dir := range []string{schemahookDir, exampleAppDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(work, filepath.Base(dir), "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("charts/%s/README.md is not what helm-docs generates from README.md.gotmpl and values.yaml: run make chart-docs (first differing line %d)",
					filepath.Base(dir), firstDiff(string(got), string(want)))
			}
			rows := readmeRows(t, filepath.Join(dir, "README.md"))
			var values map[string]any
			readYAML(t, filepath.Join(dir, "values.yaml"), &values)
			for _, leaf := range leaves(values, "") {
				if !slices.ContainsFunc(rows, func(r string) bool { return r == leaf || strings.HasPrefix(leaf, r+".") }) {
					t.Errorf("values.yaml key %s has no row in the README's values table: give it a # -- comment", leaf)
				}
			}
		})
	}
}

func firstDiff(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// TestSchemaFollowsValues: values.schema.json and values.yaml describe the same keys with the same
// types. A key added to values.yaml without a schema property, a property for a key that
// values.yaml no longer has, or a default the schema itself would reject, fails here.
func TestSchemaFollowsValues(t *testing.T) {
	for _, dir := range []string{schemahookDir, exampleAppDir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var values map[string]any
			readYAML(t, filepath.Join(dir, "values.yaml"), &values)
			var schema map[string]any
			b, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
			if err != nil || json.Unmarshal(b, &schema) != nil {
				t.Fatalf("reading values.schema.json: %v", err)
			}
			for _, leaf := range leaves(values, "") {
				if !inSchema(schema, leaf) {
					t.Errorf("values.yaml key %s: no such property in values.schema.json", leaf)
				}
			}
			checkSchemaTypes(t, schema, values, "")
			for _, p := range schemaProperties(schema, "") {
				if p == "global" { // Helm's own, shared with every chart of a release
					continue
				}
				if _, ok := lookup(values, p); !ok {
					t.Errorf("values.schema.json property %s: no such key in values.yaml", p)
				}
			}
		})
	}
}

// checkSchemaTypes fails for every default in values whose JSON type the schema's "type" at the
// same place does not allow.
func checkSchemaTypes(t *testing.T, schema map[string]any, v any, path string) {
	t.Helper()
	if want, ok := schema["type"]; ok {
		got := jsonType(v)
		allowed := []string{}
		switch w := want.(type) {
		case string:
			allowed = append(allowed, w)
		case []any:
			for _, x := range w {
				allowed = append(allowed, x.(string))
			}
		}
		if !slices.Contains(allowed, got) && !(got == "integer" && slices.Contains(allowed, "number")) {
			t.Errorf("values.yaml %s is %s, values.schema.json wants %v", path, got, allowed)
		}
	}
	m, ok := v.(map[string]any)
	props, _ := schema["properties"].(map[string]any)
	if !ok || props == nil {
		return
	}
	for k, sub := range m {
		if ps, ok := props[k].(map[string]any); ok {
			checkSchemaTypes(t, ps, sub, strings.TrimPrefix(path+"."+k, "."))
		}
	}
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	case int, int64:
		return "integer"
	}
	return "unknown"
}

// schemaProperties lists the dotted paths of every declared property, objects included.
func schemaProperties(schema map[string]any, prefix string) []string {
	props, _ := schema["properties"].(map[string]any)
	var out []string
	for k, v := range props {
		out = append(out, prefix+k)
		if sub, ok := v.(map[string]any); ok {
			out = append(out, schemaProperties(sub, prefix+k+".")...)
		}
	}
	return out
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
