package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// starLab is a lab of n namespaces around a hub: its up takes a while.
func starLab(name string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nnamespaces:\n  hub:\n    interfaces:\n", name)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "      h%d: {}\n", i)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  n%d:\n    interfaces:\n      v%d: {peer: hub/h%d, addresses: [10.8.%d.1/24]}\n", i, i, i, i)
	}
	return b.String()
}

// sandboxDir is where uid 65534's sandbox name is registered (no
// XDG_RUNTIME_DIR, /tmp/netlab-65534 theirs).
func sandboxDir(name string) string { return filepath.Join(userState, "sandboxes", name) }

// keeperOf reads the keeper's PID of the user's sandbox name.
func keeperOf(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sandboxDir(name), "keeper.json"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		PID int `json:"keeper_pid"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.PID <= 1 {
		t.Fatalf("keeper.json of %s: %s (%v)", name, b, err)
	}
	return k.PID
}

// ended says whether the process pid is gone or a zombie.
func ended(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || strings.Contains(string(b), ") Z")
}

// killAndWait SIGKILLs pid, a process this test's user started, and waits
// until it is gone or a zombie: by its start time too, since on a machine
// whose pid_max is 32768 its PID may soon name another process.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	start, ok := proc.StartTime(pid)
	if !ok {
		return // gone already
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if now, ok := proc.StartTime(pid); !ok || now != start {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d alive 10 s after SIGKILL", pid)
		}
	}
}

// background starts a command as the user and returns it with its output.
func (u *user) background(env []string, name string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	u.t.Helper()
	argv := u.argv(env, name, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = u.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &out
}

// exitOf waits for a command started by background and returns its status.
func exitOf(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var ws syscall.WaitStatus
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		ws = st
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// asUID runs a command as uid (and gid) id with no capability.
func asUID(t *testing.T, id int, name string, args ...string) result {
	t.Helper()
	s := strconv.Itoa(id)
	return run(t, "/", nil, "setpriv", append([]string{"--reuid=" + s, "--regid=" + s, "--clear-groups", "--inh-caps=-all", "--", name}, args...)...)
}

// ownDir makes a directory of uid 65534's with mode 0700, as their
// XDG_RUNTIME_DIR.
func ownDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-xdg-")
	if err == nil {
		err = os.Chown(dir, 65534, 65534)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// noneLeft fails the test when the user still has a process or their
// registry directory.
func noneLeft(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); processesOf(t, "65534") != ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("processes of the user left:\n%s", processesOf(t, "65534"))
			break
		}
	}
	if _, err := os.Stat(userState); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(filepath.Join(userState, "sandboxes"))
		t.Errorf("the user's registry %s left (%v): %v", userState, err, ents)
	}
}

// cutShort kills `netlab [--sandbox NAME] up` as the user between the
// making of the sandbox's directory and the writing of its keeper.json: the
// state a creator killed there leaves. It tries again when the kill came
// too early or too late.
func cutShort(t *testing.T, u *user, name, file string) {
	t.Helper()
	dir := sandboxDir(name)
	for try := 0; try < 50; try++ {
		cmd, out := u.background(nil, netlabBin, "--sandbox", name, "up", file)
		caught := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !ended(cmd.Process.Pid); {
			if _, err := os.Stat(filepath.Join(dir, "keeper.json")); err == nil {
				break // too late: it is registered
			}
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				caught = true
				break
			}
		}
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if _, err := os.Stat(filepath.Join(dir, "keeper.json")); caught && os.IsNotExist(err) {
			return
		}
		t.Logf("try %d: the kill missed the moment (%s)", try, strings.TrimSpace(out.String()))
		u.netlab("--sandbox", name, "down", "--all")
		u.netlab("sandbox", "rm", name)
	}
	t.Fatalf("could not kill up between the sandbox's directory and its keeper.json in 50 tries")
}

// TestAdversarialCutShort: `netlab up` as a user, SIGKILLed between making
// its sandbox's directory and writing keeper.json, leaves a directory that
// sandbox ls shows (as incomplete) and sandbox rm, sandbox rm --all, down
// --all and the next up remove. The keeper, if it had started, ends by
// itself.
func TestAdversarialCutShort(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	file := u.file("adv.yaml", advLab)

	cutShort(t, u, "default", file)
	ls := u.mustNetlab("sandbox", "ls")
	if !strings.Contains(ls, "default") || !strings.Contains(ls, "incomplete") {
		t.Errorf("sandbox ls does not show the cut-short sandbox:\n%s", ls)
	}
	var list []struct {
		Name       string `json:"name"`
		Alive      bool   `json:"alive"`
		Incomplete string `json:"incomplete"`
	}
	if err := json.Unmarshal([]byte(u.mustNetlab("sandbox", "ls", "--json")), &list); err != nil || len(list) != 1 || list[0].Alive || list[0].Incomplete == "" {
		t.Errorf("sandbox ls --json: %+v, %v", list, err)
	}
	if out := u.mustNetlab("down", "--all"); !strings.Contains(out, "cut short") {
		t.Errorf("down --all does not say what it found:\n%s", out)
	}
	noneLeft(t)

	cutShort(t, u, "x1", file)
	if out := u.mustNetlab("sandbox", "rm", "x1"); !strings.Contains(out, "sandbox x1: removed") || !strings.Contains(out, "incomplete") {
		t.Errorf("sandbox rm x1:\n%s", out)
	}
	noneLeft(t)

	cutShort(t, u, "x2", file)
	if out := u.mustNetlab("sandbox", "rm", "--all"); !strings.Contains(out, "sandbox x2: removed") {
		t.Errorf("sandbox rm --all:\n%s", out)
	}
	noneLeft(t)

	// The next up clears it away and makes the sandbox.
	cutShort(t, u, "default", file)
	out := u.mustNetlab("up", file)
	if !strings.Contains(out, "lab adv: up") || !strings.Contains(out, "cut short") {
		t.Errorf("up after a cut-short one:\n%s", out)
	}
	u.mustNetlab("down", "--all")
	noneLeft(t)
	sameMachine(t, before)
}

// TestAdversarialEnvironment: where a user's sandboxes are registered does
// not hang on the environment: a lab made with XDG_RUNTIME_DIR (or TMPDIR)
// set is found, and taken down, by commands without it.
func TestAdversarialEnvironment(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	file := u.file("adv.yaml", advLab)
	for _, env := range []string{"XDG_RUNTIME_DIR", "TMPDIR"} {
		t.Run(env, func(t *testing.T) {
			u := u.with(t)
			dir := ownDir(t)
			with := []string{env + "=" + dir}
			if r := u.run(with, netlabBin, "up", file); r.code != 0 {
				t.Fatalf("up with %s: exit %d\n%s", with[0], r.code, r.out)
			}
			if st := u.mustNetlab("status"); !strings.Contains(st, "lab adv") {
				t.Errorf("status without %s does not find the lab:\n%s", env, st)
			}
			if r := u.run(with, netlabBin, "status", "adv"); r.code != 0 || !strings.Contains(r.out, "lab adv") {
				t.Errorf("status with %s: exit %d\n%s", env, r.code, r.out)
			}
			out := u.mustNetlab("down", "adv")
			if !strings.Contains(out, "lab adv: down") || !strings.Contains(out, "sandbox default: removed") {
				t.Errorf("down without %s:\n%s", env, out)
			}
			noneLeft(t)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left in %s=%s: %v", env, dir, ents)
			}
		})
	}
	sameMachine(t, before)
}

// TestAdversarialReadOnly: verbs that only look (or find nothing to do)
// leave no file of the user's: no /tmp/netlab-UID.
func TestAdversarialReadOnly(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	for _, args := range [][]string{
		{"sandbox", "ls"},
		{"sandbox", "ls", "--json"},
		{"sandbox", "rm", "--all"},
		{"sandbox", "rm", "nothere"},
		{"sandbox", "exec", "nothere", "--", "id"},
		{"status"},
		{"status", "adv"},
		{"down", "--all"},
		{"down", "adv"},
		{"--sandbox", "other", "status"},
		{"flows", "adv"},
	} {
		r := u.netlab(args...)
		if r.code == 2 || strings.Contains(r.out, "panic") {
			t.Errorf("netlab %q: exit %d\n%s", args, r.code, r.out)
		}
		if _, err := os.Stat(userState); !os.IsNotExist(err) {
			t.Errorf("netlab %q left %s (%v)", args, userState, err)
			os.RemoveAll(userState)
		}
	}
	noneLeft(t)
	sameMachine(t, before)
}

// TestAdversarialSquatted: /tmp/netlab-65534 made beforehand by another
// user (uid 65533) is never used, and the refusal says the way round: an
// XDG_RUNTIME_DIR of one's own, mode 0700, which then works for every verb.
// Without it a verb says why it cannot look, never "no labs".
func TestAdversarialSquatted(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	if p := processesOf(t, "65533"); p != "" {
		t.Fatalf("uid 65533 already runs processes; this test plays that user:\n%s", p)
	}
	if _, err := os.Lstat(userState); err == nil {
		t.Fatalf("%s is there before the test", userState)
	}
	must(t, "mkdir as uid 65533", asUID(t, 65533, "mkdir", "-m", "0700", userState))
	t.Cleanup(func() { os.RemoveAll(userState) })
	file := u.file("adv.yaml", advLab)
	for _, args := range [][]string{{"up", file}, {"status"}, {"sandbox", "ls"}, {"down", "--all"}} {
		r := u.netlab(args...)
		if r.code != 1 || !strings.Contains(r.out, userState) || !strings.Contains(r.out, "uid 65533") || !strings.Contains(r.out, "XDG_RUNTIME_DIR") {
			t.Errorf("netlab %q with %s another user's: exit %d, want 1 and the way round:\n%s", args, userState, r.code, r.out)
		}
	}
	xdg := []string{"XDG_RUNTIME_DIR=" + ownDir(t)}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", file}, "lab adv: up"},
		{[]string{"status"}, "lab adv"},
		{[]string{"exec", "adv", "a", "--", "ping", "-c1", "-W2", "10.9.0.2"}, "1 received"},
		{[]string{"down", "--all"}, "sandbox default: removed"},
	} {
		if r := u.run(xdg, netlabBin, c.args...); r.code != 0 || !strings.Contains(r.out, c.want) {
			t.Errorf("netlab %q with %s: exit %d, want %q:\n%s", c.args, xdg[0], r.code, c.want, r.out)
		}
	}
	if ents, err := os.ReadDir(userState); err != nil || len(ents) != 0 {
		t.Errorf("the other user's %s: %v, %v", userState, ents, err)
	}
	if p := processesOf(t, "65534"); p != "" {
		t.Errorf("processes of the user left:\n%s", p)
	}
	sameMachine(t, before)
}

// TestAdversarialKeeperDied: a sandbox whose keeper is killed takes its
// labs with it. The next verb says so (status: not just "no labs") and
// removes the dead entry; a verb running in it when it dies says so, with
// exit 1 (not a silent 137); up then makes a fresh one.
func TestAdversarialKeeperDied(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	file := u.file("adv.yaml", advLab)

	u.mustNetlab("up", file)
	pid := keeperOf(t, "default")
	killAndWait(t, pid)
	r := u.netlab("status")
	if r.code != 0 || !strings.Contains(r.out, fmt.Sprintf("sandbox default: its keeper (pid %d", pid)) || !strings.Contains(r.out, "died") {
		t.Errorf("status after the keeper died: exit %d\n%s", r.code, r.out)
	}
	if ls := u.mustNetlab("sandbox", "ls"); !strings.Contains(ls, "no sandboxes") {
		t.Errorf("the dead entry was left:\n%s", ls)
	}
	noneLeft(t)

	t.Run("while exec runs", func(t *testing.T) {
		u := u.with(t)
		u.mustNetlab("up", file)
		pid := keeperOf(t, "default")
		cmd, out := u.background(nil, netlabBin, "exec", "adv", "a", "--", "sleep", "60")
		for deadline := time.Now().Add(20 * time.Second); !sleeping(t); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no sleep in the sandbox:\n%s", out.String())
			}
		}
		killAndWait(t, pid)
		code := exitOf(t, cmd)
		if code != 1 || !strings.Contains(out.String(), fmt.Sprintf("its keeper (pid %d) died", pid)) {
			t.Errorf("exec when the keeper died: exit %d, want 1 and why:\n%s", code, out.String())
		}
		noneLeft(t)
	})

	t.Run("while up runs", func(t *testing.T) {
		u := u.with(t)
		star := u.file("star.yaml", starLab("star", 40))
		for try := 0; ; try++ {
			if try == 10 {
				t.Fatal("up always ended before the keeper could be killed")
			}
			cmd, out := u.background(nil, netlabBin, "up", star)
			pid := waitInnerUp(t, cmd)
			if pid == 0 {
				if code := exitOf(t, cmd); code != 0 {
					t.Fatalf("up of the star lab: exit %d\n%s", code, out.String())
				}
				u.netlab("down", "--all")
				continue
			}
			killAndWait(t, pid)
			code := exitOf(t, cmd)
			if code == 0 {
				u.netlab("down", "--all")
				continue // up had just ended
			}
			if code != 1 || !strings.Contains(out.String(), fmt.Sprintf("its keeper (pid %d) died", pid)) || !strings.Contains(out.String(), "netlab up again") {
				t.Errorf("up when the keeper died: exit %d, want 1, why and what to do:\n%s", code, out.String())
			}
			break
		}
		noneLeft(t)
		if out := u.mustNetlab("up", u.file("adv.yaml", advLab)); !strings.Contains(out, "lab adv: up") {
			t.Errorf("up after:\n%s", out)
		}
		u.mustNetlab("down", "--all")
		noneLeft(t)
	})
	sameMachine(t, before)
}

// sleeping says whether uid 65534 runs `sleep 60` (the command itself, not
// a command line that names it).
func sleeping(t *testing.T) bool {
	for _, line := range strings.Split(processesOf(t, "65534"), "\n") {
		if _, cmdline, _ := strings.Cut(line, " "); cmdline == "sleep 60" {
			return true
		}
	}
	return false
}

// waitInnerUp waits until `netlab up`, started by cmd, runs inside the
// user's sandbox default (a process of its keeper's network namespace,
// not the keeper, running `up`) and returns the keeper's PID; 0 when cmd
// ended first.
func waitInnerUp(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if ended(cmd.Process.Pid) {
			return 0
		}
		b, err := os.ReadFile(filepath.Join(sandboxDir("default"), "keeper.json"))
		if err != nil {
			continue // not registered yet
		}
		var k struct {
			PID int `json:"keeper_pid"`
		}
		var keeperNS syscall.Stat_t
		if json.Unmarshal(b, &k) != nil || syscall.Stat("/proc/"+strconv.Itoa(k.PID)+"/ns/net", &keeperNS) != nil {
			continue
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == k.PID {
				continue
			}
			var ns syscall.Stat_t
			dir := "/proc/" + e.Name()
			if syscall.Stat(dir+"/ns/net", &ns) != nil || ns.Ino != keeperNS.Ino || ns.Dev != keeperNS.Dev {
				continue
			}
			b, _ := os.ReadFile(dir + "/cmdline")
			if args := strings.Split(string(b), "\x00"); len(args) > 1 && strings.HasSuffix(args[0], "netlab") && args[1] == "up" {
				return k.PID
			}
		}
	}
	return 0
}

// TestAdversarialRegistryModes: every directory of the user's registry is
// 0700 and every file 0600, theirs, even under a umask of 0.
func TestAdversarialRegistryModes(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	file := u.file("adv.yaml", advLab)
	umask0 := func(args ...string) {
		t.Helper()
		r := u.run(nil, "sh", append([]string{"-c", `umask 000 && exec "$0" "$@"`, netlabBin}, args...)...)
		if r.code != 0 {
			t.Fatalf("netlab %q with umask 0: exit %d\n%s", args, r.code, r.out)
		}
	}
	umask0("up", file)
	umask0("sandbox", "create", "kept")
	n := 0
	err := filepath.WalkDir(userState, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		want := uint32(syscall.S_IFREG | 0o600)
		if e.IsDir() {
			want = syscall.S_IFDIR | 0o700
		}
		if st.Mode != want || st.Uid != 65534 {
			t.Errorf("%s: mode %o, owner %d; want %o, 65534", path, st.Mode, st.Uid, want)
		}
		n++
		return nil
	})
	if err != nil || n < 10 {
		t.Errorf("walked %d entries of %s: %v", n, userState, err)
	}
	u.mustNetlab("down", "--all")
	u.mustNetlab("sandbox", "rm", "kept")
	noneLeft(t)
	sameMachine(t, before)
}
