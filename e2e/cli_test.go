package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecGraphCompletion: the user-facing helpers around a running lab.
func TestExecGraphCompletion(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	labUp(t, "testdata/pair.yaml", p, "pair")
	lab := p + "pair"

	// up --json: one event per action, then a final one; -q: the result only.
	other := newPrefix(t)
	r0 := netlab(t, "up", "--json", "--prefix", other, "testdata/pair.yaml")
	t.Cleanup(func() { netlab(t, "down", other+"pair") })
	lines := strings.Split(strings.TrimSpace(r0.out), "\n")
	if r0.code != 0 || len(lines) < 10 || !strings.Contains(lines[0], `"event":"action"`) || !strings.Contains(lines[len(lines)-1], `"event":"done"`) {
		t.Errorf("up --json: exit %d\n%s", r0.code, r0.out)
	}
	if out := mustNetlab(t, "up", "-q", "--prefix", other, "testdata/pair.yaml"); strings.TrimSpace(out) != "lab "+other+"pair: up to date" {
		t.Errorf("up -q on a converged lab: %q", out)
	}
	if out := mustNetlab(t, "down", "--json", other+"pair"); !strings.Contains(out, `"event":"removed"`) || !strings.Contains(out, `"not_running":false`) {
		t.Errorf("down --json:\n%s", out)
	}

	// exec by the file's namespace name and by the machine's.
	if out := mustNetlab(t, "exec", lab, "a", "--", "ip", "-br", "addr", "show", "eth0"); !strings.Contains(out, "192.168.77.1/24") {
		t.Errorf("exec in a: %s", out)
	}
	if out := mustNetlab(t, "exec", lab, p+"b", "--", "ip", "-br", "addr", "show", "eth0"); !strings.Contains(out, "192.168.77.2/24") {
		t.Errorf("exec in %sb: %s", p, out)
	}
	if r := netlab(t, "exec", lab, "a", "--", "sh", "-c", "exit 3"); r.code != 3 {
		t.Errorf("exec exit code: %d, want the command's 3", r.code)
	}
	if r := netlab(t, "exec", lab, "nowhere", "--", "true"); r.code != 2 {
		t.Errorf("exec in a missing namespace: exit %d\n%s", r.code, r.out)
	}

	// graph of the running lab and of a file.
	if out := mustNetlab(t, "graph", lab, "--format", "mermaid"); !strings.Contains(out, "graph LR") || !strings.Contains(out, p+"a") {
		t.Errorf("mermaid of the running lab:\n%s", out)
	}
	svg := filepath.Join(t.TempDir(), "br.svg")
	mustNetlab(t, "graph", "../labs/blue-red.yaml", "--format", "svg", "-o", svg)
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), "<svg") || !strings.Contains(string(b), "ovsbr0") {
		t.Errorf("svg: %v\n%.300s", err, b)
	}

	// check: a failing expectation fails the command, with the table.
	bad := writeFile(t, t.TempDir(), "pair.yaml", strings.Replace(readFile(t, "testdata/pair.yaml"), "name: pair", `name: pair
expect:
  - {from: a, to: b, ping: true}
  - {from: a, to: 192.168.77.99, ping: true}`, 1))
	r := netlab(t, "check", "--prefix", p, bad)
	if r.code != 1 || !strings.Contains(r.out, "1 passed, 1 failed") || !strings.Contains(r.out, "FAIL") {
		t.Errorf("check with a failing expectation: exit %d\n%s", r.code, r.out)
	}

	// completion scripts are valid shell.
	script := mustNetlab(t, "completion", "bash")
	cmd := exec.Command("bash", "-n")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("bash completion does not parse: %v\n%s", err, out)
	}
	if v := mustNetlab(t, "--version"); !strings.HasPrefix(v, "netlab ") {
		t.Errorf("--version: %s", v)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
