package topology

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// loadSchema reads docs/netlab.schema.json, the schema editors validate lab
// files with.
func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../docs/netlab.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("docs/netlab.schema.json: %v", err)
	}
	return schema
}

// resolve follows a local "$ref": "#/$defs/name".
func resolve(t *testing.T, root, s map[string]any) map[string]any {
	t.Helper()
	for range 10 {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name, ok := strings.CutPrefix(ref, "#/$defs/")
		def, found := root["$defs"].(map[string]any)[name].(map[string]any)
		if !ok || !found {
			t.Fatalf("schema: unresolvable $ref %q", ref)
		}
		s = def
	}
	t.Fatalf("schema: $ref loop")
	return nil
}

// TestSchemaSections holds every object of the schema to the parser's key
// lists: the same keys, and no others allowed, so neither side can grow a
// key the other lacks.
func TestSchemaSections(t *testing.T) {
	root := loadSchema(t)
	for name, sec := range sections() {
		s := root
		if name != "lab" {
			def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
			if !ok {
				t.Errorf("schema has no $defs.%s", name)
				continue
			}
			s = def
		}
		props, _ := s["properties"].(map[string]any)
		var keys []string
		for k := range props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(sec.known))
		if !slices.Equal(keys, want) {
			t.Errorf("schema %s has keys %q; the parser accepts %q", name, keys, want)
		}
		if s["additionalProperties"] != false {
			t.Errorf("schema %s allows unknown keys; the parser does not", name)
		}
	}
}

// TestSchemaCoversExamples walks every valid example and shipped lab key by
// key through the schema: a key the schema does not describe fails here.
func TestSchemaCoversExamples(t *testing.T) {
	root := loadSchema(t)
	good, _ := filepath.Glob("testdata/good/*.yaml")
	labs, _ := filepath.Glob("../labs/*.yaml")
	files := append(good, labs...)
	if len(files) == 0 {
		t.Fatal("no example files")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// As the parser sees it: aliases and merge keys expanded.
		tree := (&parser{file: file}).expandAliases(doc.Content[0])
		if tree == nil {
			t.Fatalf("%s: its aliases do not expand", file)
		}
		walkSchema(t, file, root, root, tree, "")
	}
}

func walkSchema(t *testing.T, file string, root, s map[string]any, n *yaml.Node, path string) {
	s = resolve(t, root, s)
	// oneOf (or anyOf) a word, a list or an object (openflow:
	// learning-switch | {preset: ...}; a file's text | {from: ...}; a
	// command as a string | a list): a mapping walks the alternative that
	// describes an object, a list the one that describes its items.
	for _, key := range []string{"oneOf", "anyOf"} {
		alts, _ := s[key].([]any)
		for _, a := range alts {
			alt, ok := a.(map[string]any)
			if !ok {
				continue
			}
			r := resolve(t, root, alt)
			if n.Kind == yaml.MappingNode && r["properties"] != nil || n.Kind == yaml.SequenceNode && r["items"] != nil {
				s = r
			}
		}
	}
	switch n.Kind {
	case yaml.MappingNode:
		props, _ := s["properties"].(map[string]any)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			kpath := join(path, key)
			if sub, ok := props[key].(map[string]any); ok {
				walkSchema(t, file, root, sub, val, kpath)
				continue
			}
			if sub, ok := s["additionalProperties"].(map[string]any); ok {
				walkSchema(t, file, root, sub, val, kpath)
				continue
			}
			if matchesPattern(t, s, key) {
				continue // the user's own (x-...), described as free
			}
			t.Errorf("%s:%d: %s: key not described by docs/netlab.schema.json", file, n.Content[i].Line, kpath)
		}
	case yaml.SequenceNode:
		items, ok := s["items"].(map[string]any)
		if !ok {
			t.Errorf("%s:%d: %s: list where the schema has no items", file, n.Line, path)
			return
		}
		for i, item := range n.Content {
			walkSchema(t, file, root, items, item, index(path, i))
		}
	}
}

// matchesPattern says whether key matches one of the schema's
// patternProperties.
func matchesPattern(t *testing.T, s map[string]any, key string) bool {
	pats, _ := s["patternProperties"].(map[string]any)
	for p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			t.Fatalf("schema pattern %q: %v", p, err)
		}
		if re.MatchString(key) {
			return true
		}
	}
	return false
}
