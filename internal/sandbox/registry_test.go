package sandbox

import (
	"os"
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

// inside runs a shell command inside the sandbox and returns its output.
func inside(t *testing.T, sb *Sandbox, script string) string {
	t.Helper()
	cmd, err := sb.Command("/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in sandbox %s: %s: %v\n%s", sb.Name, script, err, out)
	}
	return string(out)
}

// A named sandbox: made by Use, entered by Command, kept while in use or
// holding a lab, removed as idle with no process and no file left.
func TestRegistryLifecycle(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	root := t.TempDir()
	reg, err := DefaultRegistry(root)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, release, err := reg.Use("life", true)
	if err != nil {
		t.Fatal(err)
	}
	if !sb.Alive() || sb.UserNS {
		t.Fatalf("sandbox %+v: want a live keeper, no user namespace for root", sb)
	}
	got := inside(t, sb, `echo "$NETLAB_IN_SANDBOX $$"; cat /sys/class/net/*/ifindex | wc -l; readlink /proc/self/ns/net`)
	f := strings.Fields(got)
	if len(f) != 4 || f[0] != "life" || f[2] != "1" || f[3] != "net:["+strconv.FormatUint(sb.NetNS, 10)+"]" {
		t.Errorf("inside the sandbox: %q", got)
	}
	if pid, _ := strconv.Atoi(f[1]); pid < 2 || pid > 1000 {
		t.Errorf("a joined command has pid %d: not in the sandbox's PID namespace", pid)
	}
	// A second Use finds the same keeper.
	again, _, release2, err := reg.Use("life", false)
	if err != nil || again == nil || again.PID != sb.PID {
		t.Fatalf("second Use: %+v, %v", again, err)
	}
	release2()

	// A lab inside (a journal under its /run/netlab) keeps it.
	inside(t, sb, `mkdir -p /run/netlab/labs/l1 && echo '{"lab":"l1"}' > /run/netlab/labs/l1/journal.json`)
	if labs, err := sb.Labs(""); err != nil || len(labs) != 1 || labs[0] != "l1" {
		t.Errorf("Labs: %v, %v", labs, err)
	}
	if removed, err := reg.RemoveIfIdle("life", ""); removed || err != nil {
		t.Fatalf("removed while in use: %v, %v", removed, err)
	}
	release()
	if removed, err := reg.RemoveIfIdle("life", ""); removed || err != nil {
		t.Fatalf("removed while it holds a lab: %v, %v", removed, err)
	}
	inside(t, sb, `rm -r /run/netlab/labs/l1`)
	if removed, err := reg.RemoveIfIdle("life", ""); !removed || err != nil {
		t.Fatalf("idle sandbox not removed: %v, %v", removed, err)
	}
	if sb.Alive() {
		t.Errorf("keeper %d still runs", sb.PID)
	}
	if _, err := os.Stat(reg.Dir); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(reg.Dir)
		t.Errorf("registry directory left: %v %v", err, ents)
	}
	if list, err := reg.List(); err != nil || len(list) != 0 {
		t.Errorf("List after removal: %v, %v", list, err)
	}
}

// A keeper killed from outside takes the sandbox with it; Use then finds
// nothing and removes what is left of it.
func TestRegistryDeadKeeper(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	reg, err := DefaultRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sb, _, release, err := reg.Use("dead", true)
	if err != nil {
		t.Fatal(err)
	}
	release()
	// A daemon inside, as OVS would be: it must go with the keeper.
	inside(t, sb, `sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /run/sleeper.pid`)
	syscall.Kill(sb.PID, syscall.SIGKILL)
	// Its exit completes once every process of its PID namespace is gone:
	// wait for that (a zombie, or reaped), not for Alive, which is false
	// as soon as it is exiting. By its start time too: on a machine whose
	// pid_max is 32768 its PID may soon name another process.
	keeperEnded := func() bool { start, ok := proc.StartTime(sb.PID); return !ok || start != sb.Start }
	for deadline := time.Now().Add(5 * time.Second); !keeperEnded(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("keeper %d alive 5 s after SIGKILL", sb.PID)
		}
	}
	again, ended, release, err := reg.Use("dead", false)
	if err != nil || again != nil {
		t.Fatalf("Use of a dead sandbox: %+v, %v", again, err)
	}
	release()
	if ended == nil || ended.PID != sb.PID || ended.Incomplete != "" {
		t.Errorf("Use does not say the sandbox's keeper %d died: %+v", sb.PID, ended)
	}
	if _, err := os.Stat(filepath.Join(reg.Dir, "dead")); !os.IsNotExist(err) {
		t.Errorf("dead sandbox's directory left: %v", err)
	}
	if err := reg.Remove("dead"); err != nil {
		t.Errorf("Remove of an absent sandbox: %v", err)
	}
}

// A user's sandbox: a user namespace of theirs, in their own directory,
// entered with nsenter as that user.
func TestRegistryRootless(t *testing.T) {
	testkit.RequireRoot(t, "runs the test as an unprivileged uid")
	bin := testBinary(t)
	out, code := asNobody(t, bin, "registry")
	if code != 0 {
		t.Fatalf("as uid %s: exit %d\n%s", testUID, code, out)
	}
	if !strings.Contains(out, "uid 0 in 0 "+testUID+" 1") || !strings.Contains(out, "removed") {
		t.Errorf("rootless registry:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join("/tmp", "netlab-"+testUID)); !os.IsNotExist(err) {
		t.Errorf("the user's state directory was left: %v", err)
	}
}

// userDirs is a stand-in for /tmp and /run/user, and an XDG_RUNTIME_DIR,
// for userRegistry.
type userDirs struct{ tmp, runUser, xdg string }

func newUserDirs(t *testing.T) userDirs {
	t.Helper()
	d := userDirs{tmp: t.TempDir(), runUser: t.TempDir(), xdg: filepath.Join(t.TempDir(), "xdg")}
	if err := os.Chmod(d.tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	return d
}

// own makes dir as uid's own with mode.
func own(t *testing.T, dir string, uid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// A user's registry is found from the uid, whatever the environment says:
// new sandboxes go to /tmp/netlab-UID, lookups search the user's runtime
// directory and $XDG_RUNTIME_DIR too, and only directories of the user's
// own with mode 0700 count. Finding it makes nothing.
func TestUserRegistryPlaces(t *testing.T) {
	testkit.RequireRoot(t, "gives directories to other uids")
	const uid, other = 65534, 65533
	dirs := func(r *Registry) []string {
		var out []string
		for _, p := range r.places {
			out = append(out, p.dir)
		}
		return out
	}

	t.Run("nothing there", func(t *testing.T) {
		d := newUserDirs(t)
		r, err := userRegistry(uid, d.tmp, d.runUser, "")
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(d.tmp, "netlab-65534", "sandboxes")
		if r.Dir != want || !slices.Equal(dirs(r), []string{want}) {
			t.Errorf("Dir %s, places %v; want %s alone", r.Dir, dirs(r), want)
		}
		if ents, _ := os.ReadDir(d.tmp); len(ents) != 0 {
			t.Errorf("finding the registry made %v", ents)
		}
	})

	t.Run("XDG_RUNTIME_DIR and /run/user searched, /tmp first", func(t *testing.T) {
		d := newUserDirs(t)
		own(t, d.xdg, uid, 0o700)
		own(t, filepath.Join(d.runUser, "65534"), uid, 0o700)
		r, err := userRegistry(uid, d.tmp, d.runUser, d.xdg)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{filepath.Join(d.tmp, "netlab-65534", "sandboxes"), filepath.Join(d.runUser, "65534", "netlab", "sandboxes"), filepath.Join(d.xdg, "netlab", "sandboxes")}
		if r.Dir != want[0] || !slices.Equal(dirs(r), want) {
			t.Errorf("Dir %s, places %v; want %v", r.Dir, dirs(r), want)
		}
		// XDG_RUNTIME_DIR naming /run/user/UID is searched once.
		r, err = userRegistry(uid, d.tmp, d.runUser, filepath.Join(d.runUser, "65534")+"/")
		if err != nil || len(r.places) != 2 {
			t.Errorf("XDG_RUNTIME_DIR = /run/user/UID: %v, %v", dirs(r), err)
		}
	})

	t.Run("another user's /tmp/netlab-UID", func(t *testing.T) {
		d := newUserDirs(t)
		squat := filepath.Join(d.tmp, "netlab-65534")
		own(t, squat, other, 0o700)
		_, err := userRegistry(uid, d.tmp, d.runUser, "")
		if err == nil {
			t.Fatal("a registry in another user's directory")
		}
		for _, want := range []string{squat, "uid 65533", "XDG_RUNTIME_DIR", "mode 0700"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the refusal does not say %q: %v", want, err)
			}
		}
		// The way round: an XDG_RUNTIME_DIR of one's own.
		own(t, d.xdg, uid, 0o700)
		r, err := userRegistry(uid, d.tmp, d.runUser, d.xdg)
		if err != nil || r.Dir != filepath.Join(d.xdg, "netlab", "sandboxes") || len(r.places) != 1 {
			t.Errorf("with XDG_RUNTIME_DIR: %v, %v", r, err)
		}
		// Or, without it, the user's runtime directory when there is one.
		own(t, filepath.Join(d.runUser, "65534"), uid, 0o700)
		r, err = userRegistry(uid, d.tmp, d.runUser, "")
		if err != nil || r.Dir != filepath.Join(d.runUser, "65534", "netlab", "sandboxes") {
			t.Errorf("with /run/user/UID: %v, %v", r, err)
		}
	})

	t.Run("refused directories", func(t *testing.T) {
		d := newUserDirs(t)
		mine := filepath.Join(d.tmp, "netlab-65534")
		own(t, mine, uid, 0o755)
		if _, err := userRegistry(uid, d.tmp, d.runUser, ""); err == nil || !strings.Contains(err.Error(), "mode 0755") {
			t.Errorf("a registry others may change: %v", err)
		}
		os.Remove(mine)
		if err := os.Symlink(t.TempDir(), mine); err != nil {
			t.Fatal(err)
		}
		if _, err := userRegistry(uid, d.tmp, d.runUser, ""); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("a registry through a symlink: %v", err)
		}
		os.Remove(mine)
		own(t, d.xdg, other, 0o700)
		r, err := userRegistry(uid, d.tmp, d.runUser, d.xdg)
		if err != nil || len(r.places) != 1 {
			t.Errorf("another user's XDG_RUNTIME_DIR searched: %v, %v", r, err)
		}
		if _, err := userRegistry(uid, d.tmp, d.runUser, "relative/dir"); err != nil {
			t.Errorf("a relative XDG_RUNTIME_DIR (ignored, as the XDG spec says): %v", err)
		}
	})
}

// A sandbox registered in any of the user's places is found, used and
// removed there, whatever place a new one would go to: a lab made in a
// shell with XDG_RUNTIME_DIR is not "not running" for one without.
func TestRegistryEveryPlace(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	d := newUserDirs(t)
	own(t, d.xdg, 0, 0o700)
	// As an earlier version did with XDG_RUNTIME_DIR set: registered there.
	squat := filepath.Join(d.tmp, "netlab-0")
	own(t, squat, 65533, 0o700)
	withXDG, err := userRegistry(0, d.tmp, d.runUser, d.xdg)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, release, err := withXDG.Use("far", true)
	if err != nil {
		t.Fatal(err)
	}
	release()
	t.Cleanup(func() { withXDG.Remove("far") })
	if _, err := os.Stat(filepath.Join(d.xdg, "netlab", "sandboxes", "far", "keeper.json")); err != nil {
		t.Fatalf("not registered under XDG_RUNTIME_DIR: %v", err)
	}
	// /tmp/netlab-0 usable again: new sandboxes go there, the old one is
	// still found where it is.
	os.Remove(squat)
	r, err := userRegistry(0, d.tmp, d.runUser, d.xdg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != filepath.Join(d.tmp, "netlab-0", "sandboxes") {
		t.Fatalf("new sandboxes go to %s", r.Dir)
	}
	got, err := r.Get("far")
	if err != nil || got == nil || got.PID != sb.PID || !got.Alive() {
		t.Fatalf("Get of a sandbox in another place: %+v, %v", got, err)
	}
	again, ended, release, err := r.Use("far", false)
	if err != nil || again == nil || again.PID != sb.PID || ended != nil {
		t.Fatalf("Use of a sandbox in another place: %+v, %+v, %v", again, ended, err)
	}
	release()
	if list, err := r.List(); err != nil || len(list) != 1 || list[0].Name != "far" {
		t.Errorf("List: %v, %v", list, err)
	}
	if err := r.Remove("far"); err != nil {
		t.Fatal(err)
	}
	if sb.Alive() {
		t.Errorf("keeper %d still runs", sb.PID)
	}
	for _, dir := range []string{filepath.Join(d.xdg, "netlab"), filepath.Join(d.tmp, "netlab-0")} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", dir, err)
		}
	}
}

// What finds or lists sandboxes writes nothing when there are none: no
// directory, no lock file.
func TestRegistryReadOnly(t *testing.T) {
	d := newUserDirs(t)
	r, err := userRegistry(os.Geteuid(), d.tmp, d.runUser, "")
	if err != nil {
		t.Fatal(err)
	}
	if list, err := r.List(); err != nil || len(list) != 0 {
		t.Errorf("List: %v, %v", list, err)
	}
	if sb, err := r.Get("x"); err != nil || sb != nil {
		t.Errorf("Get: %v, %v", sb, err)
	}
	sb, ended, release, err := r.Use("x", false)
	if err != nil || sb != nil || ended != nil {
		t.Errorf("Use without create: %v, %v, %v", sb, ended, err)
	}
	release()
	if removed, err := r.RemoveIfIdle("x", ""); removed || err != nil {
		t.Errorf("RemoveIfIdle: %v, %v", removed, err)
	}
	if err := r.Remove("x"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if ents, _ := os.ReadDir(d.tmp); len(ents) != 0 {
		t.Errorf("looking made %v", ents)
	}
	for _, bad := range []string{"", "..", "../x", "a/b"} {
		if _, err := r.Get(bad); err == nil {
			t.Errorf("Get(%q): no error", bad)
		}
		if err := r.Remove(bad); err == nil {
			t.Errorf("Remove(%q): no error", bad)
		}
	}
}

// What a creator killed between making a sandbox's directory and writing
// its keeper.json leaves is listed as incomplete (as being made while its
// lock is held), and Use, Create and Remove clear it away.
func TestRegistryIncomplete(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	reg, err := DefaultRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := reg.places[0]
	cutShort := func(name string) {
		t.Helper()
		if err := p.ensure(); err != nil {
			t.Fatal(err)
		}
		if err := mkdirPrivate(p.sandboxDir(name)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p.sandboxDir(name), "keeper.log"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cutShort("cut")
	list, err := reg.List()
	if err != nil || len(list) != 1 || list[0].Name != "cut" || !strings.Contains(list[0].Incomplete, "cut short") || list[0].Alive() {
		t.Fatalf("List of a cut-short sandbox: %+v, %v", list, err)
	}
	unlock, err := p.lock("cut")
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := reg.List(); len(list) != 1 || !strings.Contains(list[0].Incomplete, "being made") {
		t.Errorf("List while its lock is held: %+v", list)
	}
	unlock()

	// Use clears it, says what it found, and leaves nothing.
	sb, ended, release, err := reg.Use("cut", false)
	if err != nil || sb != nil || ended == nil || ended.Incomplete == "" {
		t.Fatalf("Use of a cut-short sandbox: %+v, %+v, %v", sb, ended, err)
	}
	release()
	if _, err := os.Stat(reg.Dir); !os.IsNotExist(err) {
		t.Errorf("Use left the registry: %v", err)
	}

	// Remove clears it.
	cutShort("cut")
	if err := reg.Remove("cut"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(reg.Dir); !os.IsNotExist(err) {
		t.Errorf("Remove left the registry: %v", err)
	}

	// An unreadable keeper.json is incomplete too, and never names a
	// process to signal.
	cutShort("junk")
	if err := os.WriteFile(filepath.Join(p.sandboxDir("junk"), "keeper.json"), []byte(`{"name":"junk","keeper_pid":-1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Get("junk"); err != nil || got == nil || got.Incomplete == "" || got.Alive() {
		t.Errorf("Get of a keeper.json naming pid -1: %+v, %v", got, err)
	}

	// Create over it makes a sandbox.
	sb, err = reg.Create("junk")
	if err != nil {
		t.Fatal(err)
	}
	if !sb.Alive() {
		t.Errorf("Create over an incomplete sandbox: %+v", sb)
	}
	if err := reg.Remove("junk"); err != nil {
		t.Fatal(err)
	}
}

// Every directory the registry makes is 0700 and every file 0600, whatever
// the umask: a keeper's files say which namespaces commands join.
func TestRegistryModes(t *testing.T) {
	testkit.RequireRoot(t, "makes namespaces")
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	d := newUserDirs(t)
	user, err := userRegistry(0, d.tmp, d.runUser, "")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "state")
	rootReg, err := DefaultRegistry(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		reg  *Registry
		walk string
	}{{user, filepath.Join(d.tmp, "netlab-0")}, {rootReg, rootReg.Dir}} {
		if _, err := c.reg.Create("modes"); err != nil {
			t.Fatal(err)
		}
		_, _, release, err := c.reg.Use("modes", false)
		if err != nil {
			t.Fatal(err)
		}
		err = filepath.WalkDir(c.walk, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			want := os.FileMode(0o600)
			if e.IsDir() {
				want = 0o700 | os.ModeDir
			}
			if fi.Mode() != want {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
			}
			return nil
		})
		release()
		if err != nil {
			t.Error(err)
		}
		if err := c.reg.Remove("modes"); err != nil {
			t.Fatal(err)
		}
	}
	// Root's state root, when the registry makes it, has the mode netlab's
	// state gives it.
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state root: %v, %v", fi.Mode(), err)
	}
}
