package main

import (
	"slices"
	"testing"
)

func TestSandboxFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		rest []string
		bad  bool
	}{
		{[]string{"up", "lab.yaml"}, "", []string{"up", "lab.yaml"}, false},
		{[]string{"--sandbox", "ci", "up", "lab.yaml"}, "ci", []string{"up", "lab.yaml"}, false},
		{[]string{"up", "--sandbox=ci", "lab.yaml"}, "ci", []string{"up", "lab.yaml"}, false},
		{[]string{"status", "-sandbox", "x"}, "x", []string{"status"}, false},
		// exec's command is its own, --sandbox there included.
		{[]string{"exec", "--sandbox", "a", "lab", "ns", "--", "prog", "--sandbox", "b"}, "a", []string{"exec", "lab", "ns", "--", "prog", "--sandbox", "b"}, false},
		{[]string{"up", "--sandbox"}, "", nil, true},
	} {
		name, rest, err := sandboxFlag(c.args)
		if (err != nil) != c.bad || name != c.name || !slices.Equal(rest, c.rest) {
			t.Errorf("sandboxFlag(%q) = %q, %q, %v; want %q, %q (error %v)", c.args, name, rest, err, c.name, c.rest, c.bad)
		}
	}
}
