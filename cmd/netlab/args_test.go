package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/capture"
	"github.com/netlab-dev/netlab/internal/sandbox"
)

// huge is a count no int holds.
const huge = "99999999999999999999999"

// argShapes are argument lists every verb must refuse before it acts: the
// usage (or the reason) and exit 2, or the usage and exit 0 for -h. None of
// them reaches the machine or makes a sandbox, so app.run runs them here,
// on the machine, in-process. own marks the shapes that only a verb acting
// on this machine's own stack refuses (a bad lab name is found once the
// verb would otherwise act): without root, lab verbs enter a sandbox for
// those, and they are left out.
var argShapes = []struct {
	args []string
	code int
	own  bool
}{
	// No verb, or no such verb; --sandbox misplaced, empty or bad.
	{[]string{}, exitUsage, false},
	{[]string{""}, exitUsage, false},
	{[]string{"--"}, exitUsage, false},
	{[]string{"-x"}, exitUsage, false},
	{[]string{"bogus", "up"}, exitUsage, false},
	{[]string{"--sandbox"}, exitUsage, false},
	{[]string{"--sandbox="}, exitUsage, false},
	{[]string{"--sandbox=", "status"}, exitUsage, false},
	{[]string{"--sandbox", "", "status"}, exitUsage, false},
	{[]string{"--sandbox", "Bad/Name", "status"}, exitUsage, false},
	{[]string{"--sandbox", "..", "status"}, exitUsage, false},
	{[]string{"--sandbox", strings.Repeat("a", 4096), "status"}, exitUsage, false},
	{[]string{"--sandbox", "x", "doctor"}, exitUsage, false},
	{[]string{"--sandbox", "x", "sandbox", "ls"}, exitUsage, false},
	{[]string{"--sandbox", "x"}, exitUsage, false},
	{[]string{"version", "extra"}, exitUsage, false},
	{[]string{"help", "bogus"}, exitUsage, false},
	{[]string{"help", "up", "down"}, exitUsage, false},
	{[]string{"help", "help"}, exitUsage, false},
	{[]string{"help"}, exitOK, false},
	{[]string{"help", "up"}, exitOK, false},
	{[]string{"help", "sandbox"}, exitOK, false},
	{[]string{"-h", "capture"}, exitOK, false},

	// Lab verbs, with and without a sandbox named: a usage error is found
	// before a sandbox is made or entered.
	{[]string{"up"}, exitUsage, false},
	{[]string{"up", "--"}, exitUsage, false},
	{[]string{"up", "-q"}, exitUsage, false},
	{[]string{"up", "--prefix"}, exitUsage, false},
	{[]string{"up", "--machine"}, exitUsage, false},
	{[]string{"up", "a.yaml", "b.yaml"}, exitUsage, false},
	{[]string{"up", "--prefix", "--", "lab.yaml"}, exitUsage, false},
	{[]string{"up", "--json", "--", "--json"}, exitUsage, false}, // a file named --json: not there
	{[]string{"up", ""}, exitUsage, false},
	{[]string{"up", "/nonexistent/lab.yaml"}, exitUsage, false},
	{[]string{"up", strings.Repeat("x", 1<<16)}, exitUsage, false},
	{[]string{"--sandbox", "shape", "up"}, exitUsage, false},
	{[]string{"down"}, exitUsage, false},
	{[]string{"down", "--"}, exitUsage, false},
	{[]string{"down", "a", "b"}, exitUsage, false},
	{[]string{"down", "--all", "a"}, exitUsage, false},
	{[]string{"down", "--all", "--", "a"}, exitUsage, false},
	{[]string{"down", "--prefix"}, exitUsage, false},
	{[]string{"down", "--machine"}, exitUsage, false},
	{[]string{"down", "-q"}, exitUsage, false},
	{[]string{"down", "--dry-run", "--json"}, exitUsage, false},
	{[]string{"down", "--all=maybe"}, exitUsage, false},
	{[]string{"down", ""}, exitUsage, true},
	{[]string{"down", "Bad"}, exitUsage, true},
	{[]string{"down", "--", "--all"}, exitUsage, true},
	{[]string{"--sandbox", "shape", "down"}, exitUsage, false},
	{[]string{"down", "--sandbox", "shape", "a", "b"}, exitUsage, false},
	{[]string{"plan"}, exitUsage, false},
	{[]string{"plan", "--"}, exitUsage, false},
	{[]string{"plan", "a", "b"}, exitUsage, false},
	{[]string{"plan", "--json"}, exitUsage, false},
	{[]string{"plan", "--machine"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "plan"}, exitUsage, false},
	{[]string{"status", "a", "b"}, exitUsage, false},
	{[]string{"status", "--prefix"}, exitUsage, false},
	{[]string{"status", "--json", "a", "b"}, exitUsage, false},
	{[]string{"status", "--", "a", "b"}, exitUsage, false},
	{[]string{"status", "--json=2"}, exitUsage, false},
	{[]string{"status", ""}, exitUsage, true},
	{[]string{"--sandbox", "shape", "status", "a", "b"}, exitUsage, false},
	{[]string{"validate"}, exitUsage, false},
	{[]string{"validate", "--"}, exitUsage, false},
	{[]string{"validate", "--static"}, exitUsage, false},
	{[]string{"validate", "--prefix"}, exitUsage, false},
	{[]string{"validate", ""}, exitUsage, false},
	{[]string{"validate", "/nonexistent/a.yaml", "/nonexistent/b.yaml"}, exitUsage, false},
	{[]string{"check"}, exitUsage, false},
	{[]string{"check", "--"}, exitUsage, false},
	{[]string{"check", "a", "b"}, exitUsage, false},
	{[]string{"check", "--timeout"}, exitUsage, false},
	{[]string{"check", "--timeout", "x", "lab"}, exitUsage, false},
	{[]string{"check", "--timeout", huge + "h", "lab"}, exitUsage, false},
	{[]string{"check", "--timeout", "--", "lab"}, exitUsage, false},
	{[]string{"check", ""}, exitUsage, true},
	{[]string{"--sandbox", "shape", "check"}, exitUsage, false},
	{[]string{"flows"}, exitUsage, false},
	{[]string{"flows", "--"}, exitUsage, false},
	{[]string{"flows", "a", "b", "c"}, exitUsage, false},
	{[]string{"flows", "--json"}, exitUsage, false},
	{[]string{"flows", "--", "a", "b", "c"}, exitUsage, false},
	{[]string{"flows", ""}, exitUsage, true},
	{[]string{"--sandbox", "shape", "flows"}, exitUsage, false},
	{[]string{"impair"}, exitUsage, false},
	{[]string{"impair", "lab"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "c"}, exitUsage, false},
	{[]string{"impair", "lab", "nodash", "--loss", "1%"}, exitUsage, false},
	{[]string{"impair", "lab", "a/", "--loss", "1%"}, exitUsage, false},
	{[]string{"impair", "lab", "/b", "--loss", "1%"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "--reset", "--clear"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "--reset", "--loss", "5%"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "--rate"}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "--limit", huge}, exitUsage, false},
	{[]string{"impair", "lab", "a/b", "--delay", "--", "x"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "impair", "lab", "a/b"}, exitUsage, false},
	{[]string{"link"}, exitUsage, false},
	{[]string{"link", "lab"}, exitUsage, false},
	{[]string{"link", "lab", "a/b"}, exitUsage, false},
	{[]string{"link", "lab", "a/b", "sideways"}, exitUsage, false},
	{[]string{"link", "lab", "a/b", "down", "up"}, exitUsage, false},
	{[]string{"link", "lab", "nodash", "down"}, exitUsage, false},
	{[]string{"link", "lab", "a/", "down"}, exitUsage, false},
	{[]string{"link", "lab", "/b", "up"}, exitUsage, false},
	{[]string{"link", "lab", "a/b/c", "down"}, exitUsage, false},
	{[]string{"link", "lab", "a/b", "down", "--reset"}, exitUsage, false},
	{[]string{"link", "lab", "a/b", "--reset=maybe"}, exitUsage, false},
	{[]string{"link", "Bad", "a/b", "down"}, exitUsage, false},
	{[]string{"link", "--", "lab", "a/b", "--reset"}, exitUsage, false},
	{[]string{"link", "-h"}, exitOK, false},
	{[]string{"--sandbox", "shape", "link", "lab"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "link", "lab", "a/b", "sideways"}, exitUsage, false},
	{[]string{"partition"}, exitUsage, false},
	{[]string{"partition", "lab"}, exitUsage, false},
	{[]string{"partition", "lab", "a"}, exitUsage, false},
	{[]string{"partition", "lab", "a", "b"}, exitUsage, false},
	{[]string{"partition", "lab", "a", "/"}, exitUsage, false},
	{[]string{"partition", "lab", "/", "b"}, exitUsage, false},
	{[]string{"partition", "lab", ",", "/", ","}, exitUsage, false},
	{[]string{"partition", "lab", "a/b/c"}, exitUsage, false},
	{[]string{"partition", "lab", "a", "/", "b", "/", "c"}, exitUsage, false},
	{[]string{"partition", "lab", "a,b", "/", "b"}, exitUsage, false},
	{[]string{"partition", "lab", "host", "/", "b"}, exitUsage, false},
	{[]string{"partition", "lab", "a/b", "--name"}, exitUsage, false},
	{[]string{"partition", "lab", "a/b", "--oneway=x"}, exitUsage, false},
	{[]string{"partition", "lab", "a/b", "--name", "--", "x"}, exitUsage, false},
	{[]string{"partition", "Bad", "a/b"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "partition", "lab", "a"}, exitUsage, false},
	{[]string{"heal"}, exitUsage, false},
	{[]string{"heal", "--"}, exitUsage, false},
	{[]string{"heal", "Bad"}, exitUsage, false},
	{[]string{"heal", "--all"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "heal"}, exitUsage, false},
	{[]string{"timeline"}, exitUsage, false},
	{[]string{"timeline", "--"}, exitUsage, false},
	{[]string{"timeline", "Bad"}, exitUsage, false},
	{[]string{"timeline", "lab", "sideways"}, exitUsage, false},
	{[]string{"timeline", "lab", "start"}, exitUsage, false},
	{[]string{"timeline", "lab", "start", "Bad_Name"}, exitUsage, false},
	{[]string{"timeline", "lab", "start", strings.Repeat("a", 25)}, exitUsage, false},
	{[]string{"timeline", "lab", "start", "-x"}, exitUsage, false},
	{[]string{"timeline", "lab", "start", "t", "--reset"}, exitUsage, false},
	{[]string{"timeline", "lab", "start", "t", "--json"}, exitUsage, false},
	{[]string{"timeline", "lab", "log"}, exitUsage, false},
	{[]string{"timeline", "lab", "log", "a", "b"}, exitUsage, false},
	{[]string{"timeline", "lab", "status", "a"}, exitUsage, false},
	{[]string{"timeline", "lab", "stop", "--reset=maybe"}, exitUsage, false},
	{[]string{"timeline", "lab", "--json=x"}, exitUsage, false},
	{[]string{"timeline", "-h"}, exitOK, false},
	{[]string{"--sandbox", "shape", "timeline"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "timeline", "lab", "start"}, exitUsage, false},
	{[]string{"timeline-run"}, exitUsage, false},
	{[]string{"timeline-run", "a", "b"}, exitUsage, false},
	{[]string{"timeline-run", "relative/labs/l/timelines/t.json"}, exitUsage, false},
	{[]string{"timeline-run", "/run/netlab/labs/l/services/t.json"}, exitUsage, false},
	{[]string{"timeline-run", "-h"}, exitUsage, false},
	{[]string{"exec"}, exitUsage, false},
	{[]string{"exec", "--"}, exitUsage, false},
	{[]string{"exec", "lab"}, exitUsage, false},
	{[]string{"exec", "lab", "ns"}, exitUsage, false},
	{[]string{"exec", "lab", "ns", "--"}, exitUsage, false},
	{[]string{"exec", "--", "--", "--"}, exitUsage, false},
	{[]string{"exec", "", "", "--"}, exitUsage, false},
	{[]string{"exec", "", "ns", "--", "true"}, exitUsage, true},
	{[]string{"--sandbox", "shape", "exec", "lab"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "exec", "lab", "ns", "--"}, exitUsage, false},
	{[]string{"ovs"}, exitUsage, false},
	{[]string{"ovs", "--"}, exitUsage, false},
	{[]string{"ovs", "lab"}, exitUsage, false},
	{[]string{"ovs", "lab", "--"}, exitUsage, false},
	{[]string{"ovs", "", "--", "ovs-vsctl", "show"}, exitUsage, false},
	{[]string{"ovs", "lab", "--", "sh", "-c", "id"}, exitUsage, false},
	{[]string{"ovs", "lab", "--", "/usr/bin/ovs-vsctl"}, exitUsage, false},
	{[]string{"ovs", "BAD!", "--", "ovs-vsctl", "show"}, exitUsage, true},
	{[]string{"--sandbox", "shape", "ovs", "lab"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "ovs", "lab", "--", "bash"}, exitUsage, false},
	{[]string{"graph"}, exitUsage, false},
	{[]string{"graph", "a", "b"}, exitUsage, false},
	{[]string{"graph", "--format"}, exitUsage, false},
	{[]string{"graph", "-o"}, exitUsage, false},
	{[]string{"graph", "/nonexistent/a.yaml"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "graph"}, exitUsage, false},
	{[]string{"logs"}, exitUsage, false},
	{[]string{"logs", "--"}, exitUsage, false},
	{[]string{"logs", "lab", "a/b", "c"}, exitUsage, false},
	{[]string{"logs", "lab", "/b"}, exitUsage, false},
	{[]string{"logs", "lab", "a/b/c"}, exitUsage, false},
	{[]string{"logs", "-f"}, exitUsage, false},
	{[]string{"logs", "--x", "lab"}, exitUsage, false},
	{[]string{"logs", "-h"}, exitOK, false},
	{[]string{"supervise"}, exitUsage, false},
	{[]string{"supervise", "a", "b"}, exitUsage, false},
	{[]string{"view-exec"}, exitUsage, false},
	{[]string{"view-exec", "a", "b"}, exitUsage, false},
	{[]string{"view-exec", "a", "--"}, exitUsage, false},
	{[]string{"relay"}, exitUsage, false},
	{[]string{"relay", "--"}, exitUsage, false},
	{[]string{"relay", "--", "/bin/true"}, exitUsage, false},
	{[]string{"relay", "--", "", "x"}, exitUsage, false},
	{[]string{"relay", "--", "/bin/true", "true"}, exitUsage, false}, // not started by a sandbox's nsenter
	{[]string{"capture"}, exitUsage, false},
	{[]string{"capture", "--"}, exitUsage, false},
	{[]string{"capture", "lab"}, exitUsage, false},
	{[]string{"capture", "lab", "icmp"}, exitUsage, false},
	{[]string{"capture", "lab", "--", "a/b"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "-w"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--count", "-1"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--count", huge}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--duration", "-1s"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--duration", huge + "h"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--snaplen", "0"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--snaplen", "1099511627776"}, exitUsage, false},
	{[]string{"capture", "lab", "a/b", "--format", "txt"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "capture", "lab"}, exitUsage, false},
	{[]string{"--sandbox", "shape", "capture", "lab", "a/b", "--snaplen", "1099511627776"}, exitUsage, false},

	// The other verbs.
	{[]string{"doctor", "extra"}, exitUsage, false},
	{[]string{"doctor", "--json", "x"}, exitUsage, false},
	{[]string{"doctor", "--json=maybe"}, exitUsage, false},
	{[]string{"doctor", "--", "x"}, exitUsage, false},
	{[]string{"sandbox"}, exitUsage, false},
	{[]string{"sandbox", ""}, exitUsage, false},
	{[]string{"sandbox", "bogus"}, exitUsage, false},
	{[]string{"sandbox", "keeper", "x"}, exitUsage, false},
	{[]string{"sandbox", "ls", "x"}, exitUsage, false},
	{[]string{"sandbox", "ls", "--json", "x"}, exitUsage, false},
	{[]string{"sandbox", "ls", "--", "x"}, exitUsage, false},
	{[]string{"sandbox", "create"}, exitUsage, false},
	{[]string{"sandbox", "create", "a", "b"}, exitUsage, false},
	{[]string{"sandbox", "create", ""}, exitUsage, false},
	{[]string{"sandbox", "create", "Bad"}, exitUsage, false},
	{[]string{"sandbox", "create", "../x"}, exitUsage, false},
	{[]string{"sandbox", "create", "--"}, exitUsage, false},
	{[]string{"sandbox", "create", strings.Repeat("a", 33)}, exitUsage, false},
	{[]string{"sandbox", "create", "-h"}, exitOK, false},
	{[]string{"sandbox", "exec"}, exitUsage, false},
	{[]string{"sandbox", "exec", "x"}, exitUsage, false},
	{[]string{"sandbox", "exec", "x", "--"}, exitUsage, false},
	{[]string{"sandbox", "exec", "", "--", "id"}, exitUsage, false},
	{[]string{"sandbox", "exec", "../x", "--", "id"}, exitUsage, false},
	{[]string{"sandbox", "exec", "--", "id"}, exitUsage, false},
	{[]string{"sandbox", "exec", "-h"}, exitOK, false},
	{[]string{"sandbox", "run"}, exitUsage, false},
	{[]string{"sandbox", "run", "--"}, exitUsage, false},
	{[]string{"sandbox", "run", ""}, exitUsage, false},
	{[]string{"sandbox", "run", "--name"}, exitUsage, false},
	{[]string{"sandbox", "run", "--name", "--", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "--name", "Bad/Name", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "--name=", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "--keep", "--keep-labs", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "--keep=maybe", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "--bogus", "true"}, exitUsage, false},
	{[]string{"sandbox", "run", "-h"}, exitOK, false},
	{[]string{"sandbox", "run", "--keep", "--", "-h"}, exitNotFound, false},
	{[]string{"sandbox", "run", "--", "/nonexistent/program"}, exitNotFound, false},
	{[]string{"sandbox", "run", "no-such-program-anywhere", "--keep"}, exitNotFound, false},
	{[]string{"sandbox", "run", "--", "/etc/passwd"}, exitCannotExec, false},
	{[]string{"sandbox", "run", "--", "/"}, exitCannotExec, false},
	// Without a "--", a --sandbox after the command is still netlab's.
	{[]string{"sandbox", "run", "pytest", "--sandbox", "x"}, exitUsage, false},
	{[]string{"sandbox", "rm"}, exitUsage, false},
	{[]string{"sandbox", "rm", "--"}, exitUsage, false},
	{[]string{"sandbox", "rm", "--all", "x"}, exitUsage, false},
	{[]string{"sandbox", "rm", "Bad"}, exitUsage, false},
	{[]string{"sandbox", "rm", "ok", ""}, exitUsage, false},
	{[]string{"sandbox", "rm", "--", "--all"}, exitUsage, false},
	{[]string{"tap-mac"}, exitUsage, false},
	{[]string{"tap-mac", "x"}, exitUsage, false},
	{[]string{"tap-mac", "x", "y", "z"}, exitUsage, false},
	{[]string{"tap-mac", "", ""}, exitUsage, false},
	{[]string{"tap-mac", "tap0", "not-a-mac"}, exitUsage, false},
	{[]string{"reflect"}, exitUsage, false},
	{[]string{"reflect", "--"}, exitUsage, false},
	{[]string{"reflect", "--dev"}, exitUsage, false},
	{[]string{"reflect", "--dev", ""}, exitUsage, false},
	{[]string{"reflect", "x"}, exitUsage, false},
	{[]string{"reflect", "--queues", huge, "--dev", "t"}, exitUsage, false},
	{[]string{"reflect", "--queues", "0", "--dev", "t"}, exitUsage, false},
	{[]string{"reflect", "-h"}, exitOK, false},
	{[]string{"completion"}, exitUsage, false},
	{[]string{"completion", "fish"}, exitUsage, false},
	{[]string{"completion", "bash", "zsh"}, exitUsage, false},
	{[]string{"completion", "--"}, exitUsage, false},
	{[]string{"completion", "-h"}, exitOK, false},
}

// Every verb, given arguments of a shape it cannot take, says so and exits
// 2 (0 for -h), and never panics. The state root is a directory of the
// test's: a shape that wrongly passed could not find the machine's labs.
func TestArgShapes(t *testing.T) {
	t.Setenv("NETLAB_SANDBOX", "")
	own := sandbox.Privileged() && sandbox.Inside() == ""
	verbs := map[string]bool{}
	for _, c := range argShapes {
		if c.own && !own {
			continue
		}
		var stdout, stderr bytes.Buffer
		a := &app{stdout: &stdout, stderr: &stderr, root: t.TempDir()}
		code := runCaught(t, a, c.args)
		if code != c.code {
			t.Errorf("netlab %q: exit %d, want %d\nstdout: %s\nstderr: %s", c.args, code, c.code, stdout.String(), stderr.String())
			continue
		}
		said := stderr.String()
		if c.code == exitOK {
			said += stdout.String()
		}
		if !strings.Contains(said, "Usage") && !strings.Contains(said, "netlab") {
			t.Errorf("netlab %q: exit %d with no usage nor reason:\nstdout: %s\nstderr: %s", c.args, code, stdout.String(), stderr.String())
		}
		if _, rest, err := front(c.args); err == nil && len(rest) > 0 {
			verbs[rest[0]] = true
		}
	}
	// Every verb has its shapes.
	for _, v := range []string{"up", "down", "plan", "status", "validate", "check", "flows", "graph", "impair", "link", "partition", "heal", "exec", "logs", "capture", "doctor", "sandbox", "tap-mac", "reflect", "supervise", "view-exec", "relay", "completion", "version", "help", "bogus"} {
		if !verbs[v] {
			t.Errorf("no argument shapes for %s", v)
		}
	}
}

// runCaught runs a.run, turning a panic into a test failure that names
// the arguments.
func runCaught(t *testing.T, a *app, args []string) (code int) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("netlab %q panics: %v", args, p)
			code = -1
		}
	}()
	return a.run(args)
}

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

// sandbox run's flags end at the command or a "--": what follows is the
// command's own, its flags that look like netlab's included.
func TestSandboxRunArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		opts runOptions
		cmd  []string
		bad  bool
	}{
		{[]string{"pytest", "-x"}, runOptions{}, []string{"pytest", "-x"}, false},
		{[]string{"--", "pytest", "-x"}, runOptions{}, []string{"pytest", "-x"}, false},
		{[]string{"--name", "ci", "--keep", "--", "sh", "-c", "exit 3"}, runOptions{name: "ci", keep: true}, []string{"sh", "-c", "exit 3"}, false},
		{[]string{"--keep-labs", "go", "test", "--keep"}, runOptions{keepLabs: true}, []string{"go", "test", "--keep"}, false},
		{[]string{"--name=x1", "./run-tests.sh", "--name", "y"}, runOptions{name: "x1"}, []string{"./run-tests.sh", "--name", "y"}, false},
		{[]string{"--", "--", "x"}, runOptions{}, []string{"--", "x"}, false},
		{[]string{"--", "-h"}, runOptions{}, []string{"-h"}, false},
		{nil, runOptions{}, nil, true},
		{[]string{"--"}, runOptions{}, nil, true},
		{[]string{"--keep"}, runOptions{}, nil, true},
		{[]string{"--name", "A", "x"}, runOptions{}, nil, true},
		{[]string{"--name", "--", "x"}, runOptions{}, nil, true},
		{[]string{"--name=", "x"}, runOptions{}, nil, true},
		{[]string{"--keep", "--keep-labs", "x"}, runOptions{}, nil, true},
		{[]string{"-x", "pytest"}, runOptions{}, nil, true},
		{[]string{""}, runOptions{}, nil, true},
	} {
		fs := flag.NewFlagSet("sandbox run", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		opts, cmd, err := sandboxRunArgs(fs, c.args)
		if (err != nil) != c.bad || !c.bad && (opts != c.opts || !slices.Equal(cmd, c.cmd)) {
			t.Errorf("sandboxRunArgs(%q) = %+v, %q, %v; want %+v, %q (error %v)", c.args, opts, cmd, err, c.opts, c.cmd, c.bad)
		}
	}
}

// A capture's file is made 0600, whatever the umask lets through.
func TestCaptureFileMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "c.pcapng")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out}
	ifaces := []capture.Interface{{NS: "blue", Name: "veth1", Label: "blue/veth1", LinkType: capture.LinkTypeEthernet}}
	if _, err := a.captureTo(ctx, nil, ifaces, path, capture.Pcapng, "", 0, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Errorf("capture file: mode %04o, %d bytes; want 0600 and a header", fi.Mode().Perm(), fi.Size())
	}
}

// FuzzArgs runs the layer that reads the command line before anything acts
// (the --sandbox flag, a verb's flags among its arguments and their "--",
// the counts, exec's and capture's own splits) on any arguments: it never
// panics, and what it returns comes from the arguments, in their order.
// None of it can reach the machine. The input is the arguments joined by
// NUL.
func FuzzArgs(f *testing.F) {
	for _, seed := range [][]string{
		{"up", "labs/blue-red.yaml"},
		{"--sandbox", "x", "exec", "lab", "ns", "--", "id"},
		{"sandbox", "exec", "x", "--", "id"},
		{"sandbox", "exec", "x", "id"},
		{"sandbox", "run", "--name", "ci", "--keep", "--", "pytest", "-x"},
		{"sandbox", "run", "--keep-labs", "sh", "-c", "exit 3"},
		{"exec", "lab", "ns", "--", "--sandbox", "y"},
		{"capture", "lab", "a/b", "-w", "-", "--count", "3", "--", "tcp", "port", "80"},
		{"down", "--all", "--json", "--", "--all"},
		{"--sandbox=", "status"},
		{"--sandbox"},
		{"--"},
		{"-", "--", "-"},
		{"status", "--json=", "--prefix=--", "x"},
		{"impair", "lab", "a/b", "--delay", "--", "x"},
		{"link", "lab", "a/b", "down"},
		{"partition", "lab", "a,b", "/", "c", "--oneway", "--name", "p9"},
		{"partition", "lab", "a,b/c,d"},
		{"heal", "lab", "p1", "p2"},
		{"check", "--timeout", huge + "h", "lab"},
		{""},
		{},
	} {
		f.Add(strings.Join(seed, "\x00"))
	}
	f.Fuzz(func(t *testing.T, joined string) {
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		explicit, rest, err := front(args)
		if err == nil {
			if !isSubsequence(rest, args) {
				t.Errorf("front(%q) = %q: not the arguments, in order", args, rest)
			}
			if i := slices.Index(args, "--"); i >= 0 && !hasSuffix(rest, args[i:]) {
				t.Errorf("front(%q) = %q: what follows -- is not kept as it is", args, rest)
			}
			if explicit != "" && sandbox.CheckName(explicit) != nil {
				t.Errorf("front(%q) let the sandbox name %q through", args, explicit)
			}
		}
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		fs.Bool("json", false, "")
		fs.String("prefix", "", "")
		fs.Int("count", 0, "")
		fs.Duration("duration", time.Second, "")
		pos, err := parse(fs, args)
		if err == nil {
			if !isSubsequence(pos, args) {
				t.Errorf("parse(%q) = %q: not the arguments, in order", args, pos)
			}
			if i := slices.Index(args, "--"); i >= 0 && !hasSuffix(pos, args[i+1:]) {
				t.Errorf("parse(%q) = %q: what follows the first -- is not positional as it is", args, pos)
			}
		}
		for _, bounds := range [][2]int{{0, 0}, {1, 1}, {1, 2}, {2, -1}} {
			fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			fs.Bool("all", false, "")
			if pos, _, ok := positional(fs, args, bounds[0], bounds[1]); ok && (len(pos) < bounds[0] || bounds[1] >= 0 && len(pos) > bounds[1]) {
				t.Errorf("positional(%q, %d, %d) = %q", args, bounds[0], bounds[1], pos)
			}
		}
		if lab, ns, cmd, ok := execArgs(args); ok && (len(cmd) == 0 || !hasSuffix(args, cmd) || lab != args[0] || ns != args[1]) {
			t.Errorf("execArgs(%q) = %q, %q, %q", args, lab, ns, cmd)
		}
		if name, cmd, ok := sandboxExecArgs(args); ok && (len(cmd) == 0 || !hasSuffix(args, cmd) || name != args[0]) {
			t.Errorf("sandboxExecArgs(%q) = %q, %q", args, name, cmd)
		}
		runFlags := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		runFlags.SetOutput(&bytes.Buffer{})
		if o, cmd, err := sandboxRunArgs(runFlags, args); err == nil && (len(cmd) == 0 || cmd[0] == "" || !hasSuffix(args, cmd) || o.keep && o.keepLabs || o.name != "" && sandbox.CheckName(o.name) != nil) {
			t.Errorf("sandboxRunArgs(%q) = %+v, %q", args, o, cmd)
		}
		specs, filter := splitCaptureArgs(args)
		for _, s := range specs {
			if !strings.Contains(s, "/") {
				t.Errorf("splitCaptureArgs(%q): interface %q has no /", args, s)
			}
		}
		_ = filter
		if a, b, err := partitionGroups(args); err == nil {
			words := strings.FieldsFunc(strings.Join(args, " "), func(r rune) bool { return r == ',' || r == ' ' || r == '/' })
			if len(a) == 0 || len(b) == 0 || !isSubsequence(append(slices.Clone(a), b...), words) {
				t.Errorf("partitionGroups(%q) = %q / %q: not the arguments' namespaces, in order", args, a, b)
			}
			for _, ns := range a {
				if slices.Contains(b, ns) || ns == "host" {
					t.Errorf("partitionGroups(%q) = %q / %q: %s in both, or the host", args, a, b, ns)
				}
			}
		}
		wantsHelp(args)
		// help and version print text only, whatever follows them.
		for _, verb := range []string{"help", "version", "completion"} {
			var out bytes.Buffer
			code := (&app{stdout: &out, stderr: &out}).run(append([]string{verb}, args...))
			if code != exitOK && code != exitUsage {
				t.Errorf("netlab %s %q: exit %d", verb, args, code)
			}
		}
	})
}

func isSubsequence(sub, of []string) bool {
	i := 0
	for _, s := range of {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

func hasSuffix(s, suffix []string) bool {
	return len(s) >= len(suffix) && slices.Equal(s[len(s)-len(suffix):], suffix)
}

// TestEveryLabVerbEnters: a verb in labVerbs must hand itself to the
// sandbox when one is named (a.enter), or `--sandbox NAME VERB` would act on
// the machine's labs instead of the sandbox's. (logs once forgot to.)
func TestEveryLabVerbEnters(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for verb := range labVerbs {
		if !strings.Contains(src.String(), `a.enter("`+verb+`"`) {
			t.Errorf("lab verb %s never calls a.enter(%q, ...): with --sandbox it would run on the machine", verb, verb)
		}
	}
}

// The two groups of netlab partition, however the arguments split them.
func TestPartitionGroups(t *testing.T) {
	for _, c := range []struct {
		args []string
		a, b []string
		ok   bool
	}{
		{[]string{"a,b", "/", "c"}, []string{"a", "b"}, []string{"c"}, true},
		{[]string{"a,b/c,d"}, []string{"a", "b"}, []string{"c", "d"}, true},
		{[]string{"a", "b", "/", "c", "d"}, []string{"a", "b"}, []string{"c", "d"}, true},
		{[]string{"a/", "c"}, []string{"a"}, []string{"c"}, true},
		{[]string{"a,", "/,c"}, []string{"a"}, []string{"c"}, true},
		{[]string{"a", "c"}, nil, nil, false},
		{[]string{"a/b/c"}, nil, nil, false},
		{[]string{"a/"}, nil, nil, false},
		{[]string{"a/a"}, nil, nil, false},
		{[]string{"host/a"}, nil, nil, false},
	} {
		a, b, err := partitionGroups(c.args)
		if (err == nil) != c.ok || c.ok && (!slices.Equal(a, c.a) || !slices.Equal(b, c.b)) {
			t.Errorf("partitionGroups(%q) = %q, %q, %v; want %q, %q (ok %v)", c.args, a, b, err, c.a, c.b, c.ok)
		}
	}
}
