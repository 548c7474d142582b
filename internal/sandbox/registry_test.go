package sandbox

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
	sb, release, err := reg.Use("life", true)
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
	again, release2, err := reg.Use("life", false)
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
	sb, release, err := reg.Use("dead", true)
	if err != nil {
		t.Fatal(err)
	}
	release()
	// A daemon inside, as OVS would be: it must go with the keeper.
	inside(t, sb, `sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /run/sleeper.pid`)
	syscall.Kill(sb.PID, syscall.SIGKILL)
	// Its exit completes once every process of its PID namespace is gone.
	for deadline := time.Now().Add(5 * time.Second); sb.Alive(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("keeper %d alive 5 s after SIGKILL", sb.PID)
		}
	}
	again, release, err := reg.Use("dead", false)
	if err != nil || again != nil {
		t.Fatalf("Use of a dead sandbox: %+v, %v", again, err)
	}
	release()
	if _, err := os.Stat(filepath.Join(reg.Dir, "dead")); !os.IsNotExist(err) {
		t.Errorf("dead sandbox's directory left: %v", err)
	}
	if out, err := os.ReadFile("/proc/" + strconv.Itoa(sb.PID) + "/stat"); err == nil && !strings.Contains(string(out), ") Z") {
		t.Errorf("keeper still there: %s", out)
	}
	if err := reg.Remove("dead"); err != nil {
		t.Errorf("Remove of an absent sandbox: %v", err)
	}
}

// A user's sandbox: a user namespace of theirs, in their own directory,
// entered with nsenter as that user.
func TestRegistryRootless(t *testing.T) {
	testkit.RequireRoot(t, "runs the test as uid 65534")
	bin := testBinary(t)
	out, code := asNobody(t, bin, "registry")
	if code != 0 {
		t.Fatalf("as uid 65534: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "uid 0 in 0 65534 1") || !strings.Contains(out, "removed") {
		t.Errorf("rootless registry:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), "netlab-65534")); !os.IsNotExist(err) {
		t.Errorf("the user's state directory was left: %v", err)
	}
}
