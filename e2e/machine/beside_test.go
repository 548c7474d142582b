package machine

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// besideLab is an OVS lab with nothing on the host but its bridge and veth
// ends: it may go up on the machine beside a user's labs (no address the
// host routes), and, with the same names, in sandboxes at once.
const besideLab = `name: beside
bridges:
  br: {openflow: learning-switch, fail-mode: secure}
namespaces:
  a:
    interfaces:
      eth0: {peer: br/va, addresses: [192.168.91.1/24]}
  b:
    interfaces:
      eth0: {peer: br/vb, addresses: [192.168.91.2/24]}
expect:
  - {from: a, to: b, ping: true}
  - {from: b, to: 192.168.91.1, tcp: 5201, reachable: false}
`

// settled waits until the machine's new links have done IPv6 duplicate
// address detection: their link-local addresses stop being tentative by
// themselves, which is the machine's lab settling, not a change.
func settled(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command("ip", "-6", "addr", "show", "tentative").Output()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("IPv6 addresses still tentative after 10 s:\n%s", out)
		}
	}
}

func writeLab(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSandboxBesideMachine: one file up on the machine and, with the very
// same names, in two of root's sandboxes at once; each works; the machine
// is the same all through the sandboxes' lives; and blue-red as shipped
// (its host addresses included) comes up in two sandboxes at once whatever
// the machine has up (make demo).
func TestSandboxBesideMachine(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	p := prefix()
	file := writeLab(t, besideLab)
	sb1, sb2 := p+"one", p+"two"
	t.Cleanup(func() {
		netlab(t, "down", p+"beside")
		netlab(t, "sandbox", "rm", sb1, sb2)
	})

	must(t, "up on the machine", netlab(t, "up", "-q", "--prefix", p, file))
	settled(t)
	withLab := testkit.Fingerprint()
	for _, sb := range []string{sb1, sb2} {
		must(t, "up in "+sb, netlab(t, "--sandbox", sb, "up", "-q", "--prefix", p, file))
	}
	for _, args := range [][]string{
		{"check", p + "beside"},
		{"--sandbox", sb1, "check", p + "beside"},
		{"check", "--sandbox", sb2, p + "beside"},
	} {
		if out := must(t, strings.Join(args, " "), netlab(t, args...)); !strings.Contains(out, " 0 failed") {
			t.Errorf("%v:\n%s", args, out)
		}
	}
	// A lab in a sandbox is not the machine's, nor the other sandbox's.
	ls := must(t, "sandbox ls", netlab(t, "sandbox", "ls"))
	if !strings.Contains(ls, sb1) || !strings.Contains(ls, sb2) {
		t.Errorf("sandbox ls:\n%s", ls)
	}
	for _, sb := range []string{sb1, sb2} {
		must(t, "up blue-red in "+sb, netlab(t, "--sandbox", sb, "up", "-q", "../../labs/blue-red.yaml"))
		if out := must(t, "check", netlab(t, "--sandbox", sb, "check", "blue-red")); !strings.Contains(out, " 0 failed") {
			t.Errorf("check blue-red in %s:\n%s", sb, out)
		}
	}
	if after := testkit.Fingerprint(); after != withLab {
		t.Errorf("labs in sandboxes changed the machine:\n%s", testkit.Diff(withLab, after))
	}
	// One sandbox down: the other and the machine's lab go on.
	out := must(t, "down --all in "+sb1, netlab(t, "--sandbox", sb1, "down", "--all"))
	if !strings.Contains(out, "sandbox "+sb1+": removed") {
		t.Errorf("down --all in a sandbox did not remove it:\n%s", out)
	}
	if out := must(t, "check", netlab(t, "--sandbox", sb2, "check", "blue-red")); !strings.Contains(out, " 0 failed") {
		t.Errorf("check in %s after %s went:\n%s", sb2, sb1, out)
	}
	// sandbox rm takes a sandbox with its labs, keeper and daemons.
	if out := must(t, "sandbox rm", netlab(t, "sandbox", "rm", sb2)); !strings.Contains(out, "sandbox "+sb2+": removed") {
		t.Errorf("sandbox rm:\n%s", out)
	}
	if after := testkit.Fingerprint(); after != withLab {
		t.Errorf("the sandboxes' lives changed the machine:\n%s", testkit.Diff(withLab, after))
	}
	if out := must(t, "check", netlab(t, "check", p+"beside")); !strings.Contains(out, " 0 failed") {
		t.Errorf("the machine's lab after the sandboxes went:\n%s", out)
	}
	must(t, "down on the machine", netlab(t, "down", p+"beside"))
	sameMachine(t, before)
}

// TestSandboxAbsent: a verb given a sandbox that is not there sees an empty
// one, and leaves none behind.
func TestSandboxAbsent(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	sb := prefix() + "none"
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status"}, 0, "no labs running"},
		{[]string{"down", "blue-red"}, 0, "lab blue-red: not running"},
		{[]string{"down", "--all"}, 0, "no labs running"},
		{[]string{"plan", "../../labs/blue-red.yaml"}, 0, "ip netns add blue"},
		{[]string{"exec", "blue-red", "blue", "--", "true"}, 2, "lab blue-red is not running"},
		{[]string{"validate", "../../labs/blue-red.yaml"}, 0, "for sandbox " + sb},
	} {
		r := netlab(t, append([]string{"--sandbox", sb}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.out, c.want) {
			t.Errorf("netlab --sandbox %s %v: exit %d, want %d and %q:\n%s", sb, c.args, r.code, c.code, c.want, r.out)
		}
	}
	if ls := must(t, "sandbox ls", netlab(t, "sandbox", "ls")); strings.Contains(ls, sb) {
		t.Errorf("a verb left sandbox %s:\n%s", sb, ls)
	}
	ext := writeLab(t, "name: ext\nbridges:\n  exbr: {type: linux, external: [eth0]}\n")
	if r := netlab(t, "--sandbox", sb, "up", ext); r.code != 2 || !strings.Contains(r.out, "lab.yaml:3:") {
		t.Errorf("up of an external port into a sandbox: exit %d\n%s", r.code, r.out)
	}
	if r := netlab(t, "--sandbox", "Bad/Name", "status"); r.code != 2 {
		t.Errorf("a bad sandbox name: exit %d\n%s", r.code, r.out)
	}
	sameMachine(t, before)
}

// TestFixtureModuleAsUser runs another module's tests (examples/fixture,
// whose TestMain calls netlabtest.Main) as uid 65534 with no capability:
// they run for real, in a sandbox of their own, and leave nothing.
func TestFixtureModuleAsUser(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := newUser(t)
	bin := filepath.Join(u.dir, "fixture.test")
	build := exec.Command("go", "test", "-c", "-race", "-o", bin, ".")
	build.Dir = "../../examples/fixture"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example's tests: %v\n%s", err, out)
	}
	if err := os.CopyFS(filepath.Join(u.dir, "testdata"), os.DirFS("../../examples/fixture/testdata")); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(u.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil {
			err = os.Chmod(path, map[bool]os.FileMode{true: 0o755, false: 0o644}[d.IsDir() || path == bin])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := u.run([]string{"NETLAB_E2E=1"}, bin, "-test.v", "-test.count=1")
	if r.code != 0 || !strings.Contains(r.out, "--- PASS: TestHTTPOverIPv4") || !strings.Contains(r.out, "--- PASS: TestHTTPOverIPv6") || strings.Contains(r.out, "SKIP") {
		t.Errorf("the example's tests as uid 65534: exit %d\n%s", r.code, r.out)
	}
	if p := processesOf(t, "65534"); p != "" {
		t.Errorf("processes of the user left:\n%s", p)
	}
	sameMachine(t, before)
}
