package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// These tests make sandboxes from the machine, so they run on it (no
// RunTests here). childEnv makes the test binary a child process instead.
const childEnv = "NETLAB_SANDBOX_TEST"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "facts":
		os.Exit(factsChild())
	case "signal":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		time.Sleep(time.Minute)
	case "run":
		// Make a sandbox (as whoever runs this) with a facts child in it.
		exe, _ := os.Executable()
		code, err := run("t", exe, []string{exe}, append(os.Environ(), childEnv+"=facts"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(100)
		}
		os.Exit(code)
	case "sleep":
		exe, _ := os.Executable()
		code, err := run("t", exe, []string{exe}, append(os.Environ(), childEnv+"=sleeper"))
		fmt.Fprintln(os.Stderr, code, err)
		os.Exit(100)
	case "sleeper":
		ino, _ := netNSInode("/proc/self/ns/net")
		fmt.Println(ino)
		time.Sleep(time.Minute)
		os.Exit(0)
	case "probe":
		if err := Probe(); err != nil {
			fmt.Printf("%v\n%s\n", err, Diagnose(err))
			os.Exit(1)
		}
		os.Exit(0)
	case "limit":
		os.Exit(limitChild())
	case "registry":
		os.Exit(registryChild())
	case "relay":
		os.Exit(relayChild())
	case "tied":
		os.Exit(tiedChild())
	}
	os.Exit(3)
}

// facts is what a process inside a sandbox sees.
type facts struct {
	PID, UID  int
	Inside    string
	NetNS     uint64
	Links     []string // /sys/class/net
	RunNetns  bool     // /run/netns exists
	RunNetlab bool     // /run/netlab exists
	Procs     int      // processes in /proc
	UIDMap    string
}

func factsChild() int {
	var f facts
	f.PID, f.UID, f.Inside = os.Getpid(), os.Getuid(), Inside()
	f.NetNS, _ = netNSInode("/proc/self/ns/net")
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		f.Links = append(f.Links, e.Name())
	}
	_, err := os.Stat("/run/netns")
	f.RunNetns = err == nil
	_, err = os.Stat("/run/netlab")
	f.RunNetlab = err == nil
	ents, _ = os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			f.Procs++
		}
	}
	b, _ := os.ReadFile("/proc/self/uid_map")
	f.UIDMap = strings.Join(strings.Fields(string(b)), " ")
	json.NewEncoder(os.Stdout).Encode(f)
	code, _ := strconv.Atoi(os.Getenv("NETLAB_SANDBOX_TEST_EXIT"))
	return code
}

// limitChild runs in a user namespace of the test's (uids 0-65535 mapped
// to themselves): it sets user.max_user_namespaces=0 there, which limits
// only that namespace and its children, and probes as uid 65534.
func limitChild() int {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0o644); err != nil {
		fmt.Println("set user.max_user_namespaces:", err)
		return 2
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(withoutEnv(os.Environ(), childEnv), childEnv+"=probe")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// NoSetGroups: setgroups is denied in this user namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Println(err)
		return 2
	}
	return 0
}

// testBinary is this test binary copied where an unprivileged uid may run it (go
// test's build directory is root's alone).
func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is root's alone.
	dir, err := os.MkdirTemp("", "netlab-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "sandbox.test")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// testUID is the unprivileged user these tests play: one no other suite
// plays, so that its state (/tmp/netlab-UID) is this package's alone while
// e2e/machine's tests (uid 65534) run beside it.
const testUID = "64534"

// asNobody runs the test binary in mode as testUID, with no capability.
func asNobody(t *testing.T, bin, mode string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("setpriv", "--reuid="+testUID, "--regid="+testUID, "--clear-groups", "--inh-caps=-all", "--", bin)
	cmd.Env = append(withoutEnv(os.Environ(), "XDG_RUNTIME_DIR"), append(env, childEnv+"="+mode, "HOME=/")...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func parseFacts(t *testing.T, out string) facts {
	t.Helper()
	var f facts
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("facts: %v\n%s", err, out)
	}
	return f
}

func hostNetNS(t *testing.T) uint64 {
	t.Helper()
	ino, err := netNSInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// checkInside checks what any sandbox must give its processes.
func checkInside(t *testing.T, f facts, host uint64) {
	t.Helper()
	if f.NetNS == host {
		t.Errorf("the sandbox runs in the machine's network namespace")
	}
	if !slices.Equal(f.Links, []string{"lo"}) {
		t.Errorf("/sys/class/net in the sandbox: %v, want only lo", f.Links)
	}
	if f.RunNetns || f.RunNetlab {
		t.Errorf("the machine's /run/netns or /run/netlab shows in the sandbox (%v, %v)", f.RunNetns, f.RunNetlab)
	}
	if f.PID == 1 || f.PID > 1000 || f.Procs > 10 {
		t.Errorf("pid %d, %d processes: not a PID namespace of its own", f.PID, f.Procs)
	}
	if f.UID != 0 {
		t.Errorf("uid %d inside, want 0", f.UID)
	}
}

func TestRun(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := hostNetNS(t)
	var out strings.Builder
	cmdOut := os.Stdout
	r, w, _ := os.Pipe()
	os.Stdout = w
	code, err := run("t1", exe, []string{exe}, append(os.Environ(), childEnv+"=facts", "NETLAB_SANDBOX_TEST_EXIT=7"))
	w.Close()
	os.Stdout = cmdOut
	io.Copy(&out, r)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit %d, want the child's 7", code)
	}
	f := parseFacts(t, out.String())
	checkInside(t, f, host)
	if f.Inside != "t1" {
		t.Errorf("Inside() = %q", f.Inside)
	}
	if f.UIDMap != "0 0 4294967295" {
		t.Errorf("root's sandbox has a user namespace of its own: uid_map %q", f.UIDMap)
	}

	code, err = run("t2", exe, []string{exe}, append(os.Environ(), childEnv+"=signal"))
	if err != nil || code != 128+int(syscall.SIGTERM) {
		t.Errorf("child killed by SIGTERM: %d, %v; want %d", code, err, 128+int(syscall.SIGTERM))
	}
}

func TestRunRootless(t *testing.T) {
	testkit.RequireRoot(t, "runs the test as an unprivileged uid")
	bin := testBinary(t)
	out, code := asNobody(t, bin, "run")
	if code != 0 {
		t.Fatalf("sandbox as uid %s: exit %d\n%s", testUID, code, out)
	}
	f := parseFacts(t, out)
	checkInside(t, f, hostNetNS(t))
	if f.UIDMap != "0 "+testUID+" 1" {
		t.Errorf("uid_map %q, want uid %s as root", f.UIDMap, testUID)
	}
	if out, code := asNobody(t, bin, "probe"); code != 0 {
		t.Errorf("Probe as uid %s: %s", testUID, out)
	}
}

// The sandbox of a process that dies goes with it, whatever was in it.
func TestRunParentDeath(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=sleep")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Fscan(stdout, &ino); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	inSandbox := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if got, err := netNSInode("/proc/" + e.Name() + "/ns/net"); err == nil && got == ino {
				pids = append(pids, pid)
			}
		}
		return proc.Alive(pids)
	}
	if len(inSandbox()) < 2 {
		t.Fatalf("expected the init and the sleeper in the sandbox, found %v", inSandbox())
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); len(inSandbox()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still in the sandbox after its creator died", inSandbox())
		}
	}
}

// A user namespace limit of zero is named, with its fix. The limit is set in
// a user namespace of the test's own, never on the machine.
func TestDiagnoseMaxUserNamespaces(t *testing.T) {
	testkit.RequireRoot(t, "makes a user namespace with uids mapped")
	bin := testBinary(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), childEnv+"=limit")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("probe with user.max_user_namespaces=0 succeeded:\n%s", out)
	}
	for _, want := range []string{"no space left on device", "user.max_user_namespaces=0", "sysctl -w user.max_user_namespaces="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("diagnosis lacks %q:\n%s", want, out)
		}
	}
}

func TestExplain(t *testing.T) {
	userns := &Error{Op: "create", Err: syscall.EPERM, UserNS: true}
	for _, c := range []struct {
		name     string
		err      error
		settings map[string]string
		euid     int
		want     string
	}{
		{"debian switch", userns, map[string]string{"kernel.unprivileged_userns_clone": "0"}, 1000, "kernel.unprivileged_userns_clone=1"},
		{"no user namespaces", &Error{Op: "create", Err: syscall.ENOSPC, UserNS: true}, map[string]string{"user.max_user_namespaces": "0"}, 1000, "user.max_user_namespaces=15000"},
		{"no network namespaces", &Error{Op: "create", Err: syscall.ENOSPC}, map[string]string{"user.max_net_namespaces": "0"}, 0, "user.max_net_namespaces=0"},
		{"ubuntu apparmor", &Error{Op: "set up", Err: errors.New("mount tmpfs on /run: operation not permitted"), UserNS: true},
			map[string]string{"kernel.apparmor_restrict_unprivileged_userns": "1"}, 1000, "sudo make install"},
		{"seccomp", userns, map[string]string{"user.max_user_namespaces": "15000"}, 1000, "seccomp"},
		{"root without capabilities", userns, nil, 0, "CAP_SETFCAP"},
		{"limit reached", &Error{Op: "create", Err: syscall.ENOSPC, UserNS: true}, map[string]string{"user.max_user_namespaces": "10"}, 1000, "is reached or zero"},
		{"nothing to add", &Error{Op: "create", Err: syscall.EINVAL, UserNS: true}, nil, 1000, ""},
	} {
		got := explain(c.err, c.settings, c.euid)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want it to say %q", c.name, got, c.want)
		}
	}
	// A root sandbox needs no user namespace: the user switches do not apply.
	if got := explain(&Error{Op: "create", Err: syscall.EPERM}, map[string]string{"kernel.unprivileged_userns_clone": "0"}, 0); strings.Contains(got, "unprivileged_userns_clone") {
		t.Errorf("root's sandbox blamed on the user namespace switch: %q", got)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"default", "a", "test-x1", strings.Repeat("a", 32)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "A", "a/b", "..", "a b", strings.Repeat("a", 33)} {
		if CheckName(bad) == nil {
			t.Errorf("CheckName(%q): no error", bad)
		}
	}
}

// registryChild makes, enters and removes a named sandbox as whoever runs
// it (TestRegistryRootless: testUID).
func registryChild() int {
	reg, err := DefaultRegistry("")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	sb, _, release, err := reg.Use("r", true)
	if err != nil {
		fmt.Println(err, Diagnose(err))
		return 1
	}
	cmd, err := sb.Command("/bin/sh", "-c", "echo uid $(id -u) in $(cat /proc/self/uid_map)")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	out, err := cmd.CombinedOutput()
	fmt.Print(string(out))
	release()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	removed, err := reg.RemoveIfIdle("r", "")
	if err != nil || !removed {
		fmt.Println("not removed:", err)
		return 1
	}
	fmt.Println("removed")
	return 0
}
