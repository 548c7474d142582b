package main

import (
	"slices"
	"testing"
)

// sandbox exec takes a command with or without arguments, after a "--" or
// not.
func TestSandboxExecArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		cmd  []string
		ok   bool
	}{
		{[]string{"x", "--", "id"}, "x", []string{"id"}, true},
		{[]string{"x", "id"}, "x", []string{"id"}, true},
		{[]string{"x", "--", "sh", "-c", "true"}, "x", []string{"sh", "-c", "true"}, true},
		{[]string{"x", "--", "--"}, "x", []string{"--"}, true},
		{[]string{"x", "--"}, "", nil, false},
		{[]string{"x"}, "", nil, false},
		{nil, "", nil, false},
	} {
		name, cmd, ok := sandboxExecArgs(c.args)
		if ok != c.ok || ok && (name != c.name || !slices.Equal(cmd, c.cmd)) {
			t.Errorf("sandboxExecArgs(%q) = %q, %q, %v; want %q, %q, %v", c.args, name, cmd, ok, c.name, c.cmd, c.ok)
		}
	}
}
