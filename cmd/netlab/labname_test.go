package main

import (
	"os"
	"path/filepath"
	"testing"
)

// down FILE reads only the lab's name when the file says it plainly, and
// otherwise loads the file (whose errors then show).
func TestNameInFile(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		text, prefix, want string
		ok                 bool
	}{
		{"# a lab\nname: blue-red\nnamespaces: {}\n", "", "blue-red", true},
		{"namespaces:\n  a: {}\nname: blue-red   # the name\n", "t1-", "t1-blue-red", true},
		{"name: 'blue-red'\n", "", "", false},         // quoted: the loader decides
		{"{name: blue-red}\n", "", "", false},         // flow style
		{"namespaces:\n  name: x\n", "", "", false},   // not the top level
		{"name: Blue\n", "", "", false},               // refused by topology
		{"name: abcdefghijklm\n", "", "", false},      // 13 characters
		{"name: blue-red\n", "bad_prefix", "", false}, // a prefix netlab refuses
	}
	for i, tc := range cases {
		path := filepath.Join(dir, "lab.yaml")
		if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, ok := nameInFile(path, tc.prefix)
		if got != tc.want || ok != tc.ok {
			t.Errorf("case %d %q prefix %q: %q, %v; want %q, %v", i, tc.text, tc.prefix, got, ok, tc.want, tc.ok)
		}
	}
}
