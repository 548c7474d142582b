package sandbox

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// relayChild is the relay's inside half as the test binary plays it
// (TestMain, childEnv=relay): os.Args are [exe -- PATH ARGV...].
func relayChild() int {
	if len(os.Args) < 4 || os.Args[1] != "--" {
		return 3
	}
	return RelayInside(os.Args[2], os.Args[3:])
}

// lockedBuffer is output written by one goroutine and read by another.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// relayed runs sh -c script in sb through a relay whose inside half is
// this test binary, and returns the relay (started) and its output.
func relayed(t *testing.T, sb *Sandbox, script string) (*Relay, *lockedBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, err := sb.Relay([]string{exe}, "/bin/sh", []string{"sh", "-c", script})
	if err != nil {
		t.Fatal(err)
	}
	r.Cmd.Env = append(r.Cmd.Env, childEnv+"=relay")
	out := &lockedBuffer{}
	r.Cmd.Stdout, r.Cmd.Stderr = out, out
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r, out
}

// waitFor waits until the output holds want.
func waitFor(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in: %s", want, out.String())
		}
	}
}

// A relay gives back a command's exact status (an exit code, a death by a
// signal as 128+N, 127 for no such program), passes signals on, and keeps
// the status when nsenter's waiting parent dies first, as the terminal's
// Ctrl-C kills it while the command inside is still cleaning up.
func TestRelay(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	reg, err := DefaultRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sb, release, err := reg.Fresh("relay", false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		release()
		if err := reg.Remove("relay"); err != nil {
			t.Error(err)
		}
	}()
	if _, _, err := reg.Fresh("relay", false, false); !errors.As(err, new(*ExistsError)) {
		t.Errorf("a second Fresh of one name: %v, want an ExistsError", err)
	}

	for _, c := range []struct {
		script string
		code   int
		out    string
	}{
		{`echo "$NETLAB_IN_SANDBOX $0"; env | grep -cE '^NETLAB_SANDBOX_(NETNS|RELAY|SIGDFL)=' || true; exit 3`, 3, "relay sh\n0\n"},
		{`kill -TERM $$`, 143, ""},
		{`exec /nonexistent/program`, 127, "not found"},
	} {
		r, out := relayed(t, sb, c.script)
		code, err := r.Wait()
		if err != nil || code != c.code || !strings.Contains(out.String(), c.out) {
			t.Errorf("%s: status %d, %v, output %q; want %d and %q", c.script, code, err, out, c.code, c.out)
		}
	}

	t.Run("signal passed on", func(t *testing.T) {
		r, out := relayed(t, sb, `trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done`)
		waitFor(t, out, "ready")
		r.Signal(syscall.SIGTERM)
		if code, err := r.Wait(); code != 9 || err != nil || !strings.Contains(out.String(), "got TERM") {
			t.Errorf("status %d, %v, output %q; want 9 after the trap", code, err, out)
		}
	})

	t.Run("nsenter killed first", func(t *testing.T) {
		r, out := relayed(t, sb, `trap 'sleep 0.3; echo cleaned up; exit 5' INT; echo ready; while :; do sleep 0.05; done`)
		waitFor(t, out, "ready")
		// What the terminal's Ctrl-C does to the process group: nsenter's
		// parent dies at once, the relay drops it, the command handles it.
		relayPID := childOf(t, r.Cmd.Process.Pid)
		cmdPID := childOf(t, relayPID)
		for _, pid := range []int{r.Cmd.Process.Pid, relayPID, cmdPID} {
			syscall.Kill(pid, syscall.SIGINT)
		}
		code, err := r.Wait()
		if code != 5 || err != nil || !strings.Contains(out.String(), "cleaned up") {
			t.Errorf("status %d, %v, output %q; want 5 once the command has cleaned up", code, err, out)
		}
	})
}

// childOf is the first child of pid, as /proc says (a Go program forks
// from any of its threads: each lists its own children).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	t.Fatalf("process %d has no child", pid)
	return 0
}

// A tied sandbox ends with the thread that made it: here the process, a
// child test binary killed with SIGKILL, leaves no keeper behind.
func TestFreshTied(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	dir := t.TempDir()
	cmd := exec.Command(testBinary(t))
	cmd.Env = append(os.Environ(), childEnv+"=tied", "NETLAB_TEST_ROOT="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var line [32]byte
	n, _ := stdout.Read(line[:])
	pid, _ := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if pid < 2 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child made no sandbox: %q", line[:n])
	}
	// The keeper by its start time too: on a machine whose pid_max is
	// 32768 its PID may soon name another process.
	start, _ := proc.StartTime(pid)
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if now, ok := proc.StartTime(pid); !ok || now != start {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keeper %d of a tied sandbox alive 5 s after its maker died", pid)
		}
	}
	reg, _ := DefaultRegistry(dir)
	if err := reg.Remove("tied"); err != nil {
		t.Error(err)
	}
}

// tiedChild makes a tied sandbox, prints its keeper's PID and waits to be
// killed.
func tiedChild() int {
	reg, err := DefaultRegistry(os.Getenv("NETLAB_TEST_ROOT"))
	if err != nil {
		return 1
	}
	sb, _, err := reg.Fresh("tied", false, true)
	if err != nil {
		os.Stdout.WriteString(err.Error() + "\n")
		return 1
	}
	os.Stdout.WriteString(strconv.Itoa(sb.PID) + "\n")
	time.Sleep(time.Minute)
	return 0
}

func TestParseReport(t *testing.T) {
	for _, c := range []struct {
		line string
		code int
		ok   bool
	}{
		{"exit 0", 0, true}, {"exit 3", 3, true}, {"signal 15", 143, true}, {"signal 2", 130, true},
		{"", 0, false}, {"exit", 0, false}, {"exit -1", 0, false}, {"exit 256", 0, false}, {"died 3", 0, false}, {"exit x", 0, false},
	} {
		if code, ok := parseReport(c.line); code != c.code || ok != c.ok {
			t.Errorf("parseReport(%q) = %d, %v; want %d, %v", c.line, code, ok, c.code, c.ok)
		}
	}
}

// Only AppArmor's restriction, alone, is a refusal another program of the
// user can get round; settings that refuse every program are not.
func TestDelegable(t *testing.T) {
	aa := map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1", "user.max_user_namespaces": "15000"}
	// As readReady reports what the init could not do.
	setUp := &Error{Op: "set up", Err: readReady(strings.NewReader("mount --make-rslave /: operation not permitted\n")), UserNS: true}
	for _, c := range []struct {
		name     string
		err      error
		settings map[string]string
		euid     int
		want     bool
	}{
		{"apparmor, mount refused", setUp, aa, 1000, true},
		{"apparmor, uid map refused", &Error{Op: "create", Err: syscall.EPERM, UserNS: true}, aa, 1000, true},
		{"apparmor and max_user_namespaces=0", setUp, map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1", "user.max_user_namespaces": "0"}, 1000, false},
		{"apparmor and the debian switch off", setUp, map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1", "kernel.unprivileged_userns_clone": "0"}, 1000, false},
		{"no restriction: seccomp or the like", setUp, map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "0"}, 1000, false},
		{"restriction off, setting absent", setUp, nil, 1000, false},
		{"root without capabilities", setUp, aa, 0, false},
		{"no user namespace asked", &Error{Op: "create", Err: syscall.EPERM}, aa, 1000, false},
		{"not a refusal", &Error{Op: "create", Err: syscall.ENOSPC, UserNS: true}, aa, 1000, false},
		{"not a sandbox error", syscall.EPERM, aa, 1000, false},
	} {
		if got := delegable(c.err, c.settings, c.euid); got != c.want {
			t.Errorf("%s: delegable = %v, want %v", c.name, got, c.want)
		}
	}
}

// The profile Diagnose shows is packaging/apparmor/netlab's, rule for
// rule; and its advice is make install, never the sysctl.
func TestDiagnoseProfile(t *testing.T) {
	b, err := os.ReadFile("../../packaging/apparmor/netlab")
	if err != nil {
		t.Fatal(err)
	}
	why := explain(&Error{Op: "set up", Err: syscall.EPERM, UserNS: true}, map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1"}, 1000)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(why, line) {
			t.Errorf("Diagnose lacks the profile's line %q:\n%s", line, why)
		}
	}
	for _, want := range []string{"sudo make install", "netlab sandbox run", "no sysctl to change"} {
		if !strings.Contains(why, want) {
			t.Errorf("Diagnose lacks %q:\n%s", want, why)
		}
	}
	if strings.Contains(why, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0") {
		t.Errorf("Diagnose advises turning the restriction off:\n%s", why)
	}
}
