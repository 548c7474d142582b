package machine

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// pairLab is two namespaces and a veth between them: nothing that needs
// /dev/net/tun or Open vSwitch, so a run of it takes a blink.
const pairLab = `name: pair
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.99.0.1/24]}
  b:
    interfaces:
      eth0: {addresses: [10.99.0.2/24]}
`

// started is a netlab run as the user in the background.
type started struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{} // closed once it has ended
}

func (s *started) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// untilReady starts netlab as the user and returns once its output says
// ready.
func (u *user) untilReady(ready string, args ...string) *started {
	u.t.Helper()
	argv := u.argv(nil, netlabBin, args...)
	s := &started{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Dir = u.dir
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	seen := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		said := false
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if !said && strings.Contains(sc.Text(), ready) {
				said = true
				close(seen)
			}
		}
	}()
	go func() {
		s.cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	select {
	case <-seen:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		u.t.Fatalf("netlab %v as uid 65534: no %q in 20 s:\n%s", args, ready, s.output())
	}
	return s
}

// exit waits for the run to end and returns its exit status.
func (s *started) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("netlab did not end in 20 s:\n%s", s.output())
	}
	return s.cmd.ProcessState.ExitCode()
}

// leftNothing fails the test when the user has a process, or a sandbox
// registry, left.
func leftNothing(t *testing.T) {
	t.Helper()
	// A keeper killed last is reaped by netlab before it exits; give the
	// kernel a moment to finish the PID namespace's teardown.
	var p string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if p = processesOf(t, "65534"); p == "" || time.Now().After(deadline) {
			break
		}
	}
	if p != "" {
		t.Errorf("processes of the user left:\n%s", p)
	}
	if _, err := os.Stat(userState); !os.IsNotExist(err) {
		t.Errorf("the user's sandbox registry %s left (%v)", userState, err)
	}
}

// TestSandboxRun: an ordinary user (uid 65534, no capability) runs a
// command, as a test suite would run, in a fresh sandbox of its own: the
// netlab it runs makes labs in that sandbox, the command's status comes
// back, a SIGTERM to netlab reaches the command, and when the command ends
// the sandbox goes with everything in it.
func TestSandboxRun(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	u.file("pair.yaml", pairLab)

	t.Run("a lab up, a ping through it, a chosen status", func(t *testing.T) {
		u := u.with(t)
		script := `set -e; N=` + netlabBin + `
$N up -q pair.yaml
$N exec pair a -- ping -c1 -W2 10.99.0.2
$N status pair | grep -q 'namespace b'
echo "in sandbox $NETLAB_IN_SANDBOX as uid $(id -u)"
exit 7`
		r := u.netlab("sandbox", "run", "--", "sh", "-c", script)
		if r.code != 7 || !strings.Contains(r.out, "1 received") || !strings.Contains(r.out, "in sandbox run-") || !strings.Contains(r.out, "as uid 0") {
			t.Errorf("sandbox run: exit %d, want 7 after the lab worked:\n%s", r.code, r.out)
		}
		leftNothing(t)
	})

	t.Run("SIGTERM to netlab reaches the command", func(t *testing.T) {
		u := u.with(t)
		s := u.untilReady("ready", "sandbox", "run", "--", "sh", "-c", `trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done`)
		s.cmd.Process.Signal(syscall.SIGTERM)
		if code := s.exit(t); code != 9 || !strings.Contains(s.output(), "got TERM") {
			t.Errorf("exit %d, want the command's 9 after its trap:\n%s", code, s.output())
		}
		// A command the signal ends: 128+15, as the shell says.
		s = u.untilReady("ready", "sandbox", "run", "--", "sh", "-c", `echo ready; exec sleep 60`)
		s.cmd.Process.Signal(syscall.SIGTERM)
		if code := s.exit(t); code != 143 {
			t.Errorf("exit %d, want 143:\n%s", code, s.output())
		}
		leftNothing(t)
	})

	t.Run("kept, entered, removed", func(t *testing.T) {
		u := u.with(t)
		r := u.netlab("sandbox", "run", "--name", "kept", "--keep", "--", netlabBin, "up", "-q", "pair.yaml")
		if r.code != 0 || !strings.Contains(r.out, "sandbox kept kept (--keep); labs: pair") || !strings.Contains(r.out, "netlab sandbox rm kept") {
			t.Fatalf("sandbox run --keep: exit %d\n%s", r.code, r.out)
		}
		if out := u.mustNetlab("--sandbox", "kept", "exec", "pair", "b", "--", "ping", "-c1", "-W2", "10.99.0.1"); !strings.Contains(out, "1 received") {
			t.Errorf("the kept lab:\n%s", out)
		}
		if r := u.netlab("sandbox", "run", "--name", "kept", "--", "true"); r.code != 125 || !strings.Contains(r.out, "sandbox kept exists") {
			t.Errorf("sandbox run of a name in use: exit %d, want 125\n%s", r.code, r.out)
		}
		if out := u.mustNetlab("sandbox", "rm", "kept"); out != "sandbox kept: removed\n" {
			t.Errorf("sandbox rm: %q", out)
		}
		leftNothing(t)
	})
	sameMachine(t, before)
}

// fixtureAsUser builds examples/fixture's test binary (and test2json, which
// go test -json runs it under) where uid 65534 may run them.
func fixtureAsUser(t *testing.T, u *user) (bin, test2json string) {
	t.Helper()
	bin = filepath.Join(u.dir, "fixture.test")
	test2json = filepath.Join(u.dir, "test2json")
	for _, b := range []*exec.Cmd{
		exec.Command("go", "test", "-c", "-race", "-o", bin, "."),
		exec.Command("go", "build", "-o", test2json, "cmd/test2json"),
	} {
		b.Dir = "../../examples/fixture"
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", b.Args, err, out)
		}
	}
	if err := os.CopyFS(filepath.Join(u.dir, "testdata"), os.DirFS("../../examples/fixture/testdata")); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(u.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil {
			err = os.Chmod(path, map[bool]os.FileMode{true: 0o755, false: 0o644}[d.IsDir() || path == bin || path == test2json])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return bin, test2json
}

// TestFixtureDelegated runs another module's tests (examples/fixture,
// netlabtest.Main) as uid 65534 the way they run where AppArmor keeps user
// namespaces from test binaries: in a sandbox netlab makes (forced here
// with NETLAB_TEST_DELEGATE=1, as this machine has no such restriction),
// with go test's flags as usual: -run, -count=2, and -json through
// test2json, as go test -json runs a test binary. The exit status is the
// tests'. Where user namespaces are off for every program of the user,
// the binary does not delegate: netlab could not do better.
func TestFixtureDelegated(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	bin, test2json := fixtureAsUser(t, u)
	env := []string{"NETLAB_TEST_DELEGATE=1", "NETLAB_E2E=1", "NETLAB_BIN=" + netlabBin}
	const said = "netlabtest: NETLAB_TEST_DELEGATE=1: the tests run in sandbox test-"

	t.Run("-run, -count=2", func(t *testing.T) {
		u := u.with(t)
		r := u.run(env, bin, "-test.v", "-test.count=2", "-test.run", "TestHTTPOverIPv4$")
		if r.code != 0 || strings.Count(r.out, "--- PASS: TestHTTPOverIPv4") != 2 || strings.Contains(r.out, "TestHTTPOverIPv6") || strings.Count(r.out, said) != 1 || strings.Contains(r.out, "SKIP") {
			t.Errorf("delegated run: exit %d\n%s", r.code, r.out)
		}
		leftNothing(t)
	})

	t.Run("-json", func(t *testing.T) {
		u := u.with(t)
		r := u.run(env, test2json, "-p", "example.com/fixture", bin, "-test.v=test2json", "-test.run", "TestHTTPOverIPv6$")
		if r.code != 0 {
			t.Fatalf("test2json: exit %d\n%s", r.code, r.out)
		}
		var passed, pkgPassed, saidIt bool
		for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
			var ev struct{ Action, Package, Test, Output string }
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not a test2json event: %q (%v)", line, err)
			}
			passed = passed || ev.Action == "pass" && ev.Test == "TestHTTPOverIPv6"
			pkgPassed = pkgPassed || ev.Action == "pass" && ev.Test == "" && ev.Package == "example.com/fixture"
			saidIt = saidIt || strings.HasPrefix(ev.Output, said)
		}
		if !passed || !pkgPassed || !saidIt {
			t.Errorf("events: test passed %v, package passed %v, delegation said %v:\n%s", passed, pkgPassed, saidIt, r.out)
		}
		leftNothing(t)
	})

	t.Run("the exit status is the binary's", func(t *testing.T) {
		u := u.with(t)
		direct := u.run([]string{"NETLAB_TEST_DELEGATE=0"}, bin, "-test.no-such-flag")
		r := u.run(env, bin, "-test.no-such-flag")
		if direct.code != 2 || r.code != direct.code || !strings.Contains(r.out, "flag provided but not defined: -test.no-such-flag") {
			t.Errorf("a flag error: exit %d delegated, %d directly\n%s", r.code, direct.code, r.out)
		}
		leftNothing(t)
	})

	t.Run("user namespaces off: no delegation", func(t *testing.T) {
		u := u.with(t)
		r := u.limited("env", "NETLAB_E2E=1", "NETLAB_BIN="+netlabBin, bin, "-test.run", "TestHTTPOverIPv4$")
		if r.code != 1 || !strings.Contains(r.out, "user.max_user_namespaces=0") || strings.Contains(r.out, "the tests run in sandbox") {
			t.Errorf("with user.max_user_namespaces=0: exit %d, want 1 without delegating\n%s", r.code, r.out)
		}
		r = u.limited(netlabBin, "doctor")
		if !strings.Contains(r.out, "go test (netlabtest.Main)") || !strings.Contains(r.out, "only root runs the tests") {
			t.Errorf("doctor with user.max_user_namespaces=0:\n%s", r.out)
		}
	})
	sameMachine(t, before)
}

// TestInstallProfile: the AppArmor profile parses with apparmor_parser (as
// it is, and as make install writes it for another PREFIX); make install
// into a DESTDIR puts the binary and the profile there, naming the
// installed path, and make uninstall takes both away; a binary in a
// directory others may write to gets no profile.
func TestInstallProfile(t *testing.T) {
	testkit.RequireRoot(t, "checks the AppArmor profile", "apparmor_parser")
	script := "../../scripts/install.sh"
	if r := run(t, "", nil, script, "check"); r.code != 0 || !strings.Contains(r.out, "packaging/apparmor/netlab parses") {
		t.Errorf("check: exit %d\n%s", r.code, r.out)
	}
	dest := t.TempDir()
	env := []string{"DESTDIR=" + dest, "BINDIR=/opt/netlab-test/bin", "APPARMOR=yes"}
	if r := run(t, "", env, script, "install", netlabBin); r.code != 0 {
		t.Fatalf("install: exit %d\n%s", r.code, r.out)
	}
	profile := filepath.Join(dest, "etc/apparmor.d/netlab")
	for path, mode := range map[string]os.FileMode{filepath.Join(dest, "opt/netlab-test/bin/netlab"): 0o755, profile: 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %04o", path, err, mode)
		}
	}
	if b, _ := os.ReadFile(profile); !strings.Contains(string(b), "\nprofile netlab /opt/netlab-test/bin/netlab flags=(unconfined) {\n  userns,\n") {
		t.Errorf("the installed profile does not name the installed binary:\n%s", b)
	}
	if r := run(t, "", nil, script, "check", profile); r.code != 0 {
		t.Errorf("check of the installed profile: exit %d\n%s", r.code, r.out)
	}
	if r := run(t, "", env, script, "uninstall"); r.code != 0 {
		t.Errorf("uninstall: exit %d\n%s", r.code, r.out)
	}
	filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left after uninstall: %s", path)
		}
		return nil
	})

	// A binary whose directory others may write to: whoever replaced it
	// would get user namespaces through the profile.
	loose := t.TempDir() // under /tmp, which everyone may write to
	env = []string{"BINDIR=" + filepath.Join(loose, "bin"), "APPARMOR=yes", "APPARMOR_DIR=" + filepath.Join(loose, "apparmor.d")}
	r := run(t, "", env, script, "install", netlabBin)
	if r.code == 0 || !strings.Contains(r.out, "not installing the AppArmor profile") {
		t.Errorf("install to a directory others may write to: exit %d\n%s", r.code, r.out)
	}
	if _, err := os.Stat(filepath.Join(loose, "apparmor.d/netlab")); !os.IsNotExist(err) {
		t.Errorf("a profile was installed for a binary others may replace (%v)", err)
	}
}
