package machine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

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
