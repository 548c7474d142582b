package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
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
		// An empty name would put the verb on the machine.
		{[]string{"--sandbox=", "up", "lab.yaml"}, "", nil, true},
		{[]string{"--sandbox", "", "up", "lab.yaml"}, "", nil, true},
		{[]string{"-sandbox="}, "", nil, true},
		// After a "--", a --sandbox is the command's.
		{[]string{"sandbox", "exec", "x", "--", "--sandbox="}, "", []string{"sandbox", "exec", "x", "--", "--sandbox="}, false},
	} {
		name, rest, err := sandboxFlag(c.args)
		if (err != nil) != c.bad || name != c.name || !slices.Equal(rest, c.rest) {
			t.Errorf("sandboxFlag(%q) = %q, %q, %v; want %q, %q (error %v)", c.args, name, rest, err, c.name, c.rest, c.bad)
		}
	}
}

// -h and --help print a verb's usage and exit 0; an unknown flag stays a
// usage error.
func TestHelpExitsZero(t *testing.T) {
	for _, verb := range []string{"up", "down", "plan", "status", "validate", "check", "graph", "flows", "exec", "doctor", "sandbox", "tap-mac", "completion", "impair", "capture"} {
		for _, help := range []string{"-h", "--help"} {
			var out bytes.Buffer
			a := &app{stdout: &out, stderr: &out}
			if code := a.run([]string{verb, help}); code != exitOK || !strings.Contains(out.String(), "netlab "+verb) {
				t.Errorf("netlab %s %s: exit %d\n%s", verb, help, code, out.String())
			}
		}
	}
	for _, verb := range []string{"up", "down", "plan", "status", "validate", "check", "graph", "flows", "doctor", "impair", "capture"} {
		var out bytes.Buffer
		if code := (&app{stdout: &out, stderr: &out}).run([]string{verb, "--no-such-flag"}); code != exitUsage {
			t.Errorf("netlab %s --no-such-flag: exit %d, want %d", verb, code, exitUsage)
		}
	}
	// Too few or too many arguments: the usage, exit 2, before anything runs.
	for _, args := range [][]string{
		{"up"}, {"up", "a.yaml", "b.yaml"}, {"plan"}, {"status", "a", "b"}, {"flows"}, {"flows", "lab", "br", "more"}, {"check"}, {"graph"}, {"validate"},
		{"down"}, {"down", "a", "b"}, {"down", "--all", "a"}, {"doctor", "extra"}, {"impair", "lab"}, {"impair", "lab", "a/b", "c"},
		{"capture", "lab"}, {"capture", "lab", "-c", "1"}, {"capture", "lab", "--", "a/b"}, {"sandbox", "ls", "extra"},
	} {
		var out bytes.Buffer
		if code := (&app{stdout: &out, stderr: &out}).run(args); code != exitUsage || !strings.Contains(out.String(), "Usage: netlab "+args[0]) {
			t.Errorf("netlab %v: exit %d, want %d with the usage\n%s", args, code, exitUsage, out.String())
		}
	}
}

func TestParseDashDash(t *testing.T) {
	for _, c := range []struct {
		args []string
		json bool
		pos  []string
	}{
		{[]string{"a", "--json", "b"}, true, []string{"a", "b"}},
		{[]string{"--json", "--", "-x", "--json"}, true, []string{"-x", "--json"}},
		{[]string{"a", "--", "--json"}, false, []string{"a", "--json"}},
		{[]string{"--"}, false, nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		pos, err := parse(fs, c.args)
		if err != nil || *asJSON != c.json || !slices.Equal(pos, c.pos) {
			t.Errorf("parse(%q) = %q, json %v, %v; want %q, json %v", c.args, pos, *asJSON, err, c.pos, c.json)
		}
	}
}
