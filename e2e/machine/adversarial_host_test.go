package machine

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// adversaryLab is a lab on the machine's own stack with nothing in the host
// but its bridge and the bridge's ports: no address, route or sysctl of the
// host, so it meets no lab of the user's (make demo).
const adversaryLab = `name: adv
bridges:
  br: {type: linux}
namespaces:
  a:
    interfaces:
      eth0: {peer: br/pa, addresses: [192.168.79.1/24]}
  b:
    interfaces:
      eth0: {peer: br/pb, addresses: [192.168.79.2/24]}
`

// rootLab brings adversaryLab up on the machine as root under a fresh
// prefix and takes it down at cleanup; it returns the lab's name.
func rootLab(t *testing.T, u *user) string {
	t.Helper()
	p := prefix()
	file := u.file("adv.yaml", adversaryLab)
	must(t, "root's up", netlab(t, "up", "-q", "--prefix", p, file))
	name := p + "adv"
	t.Cleanup(func() { netlab(t, "down", name) })
	return name
}

// TestLocksAreRoots: flock needs only read access, so a lock file another
// user can open is a lock they can hold for ever, hanging root's up and
// down. netlab's state directory and its locks are root's alone: the user
// cannot open them, and root's down goes through while the user tries.
func TestLocksAreRoots(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	name := rootLab(t, u)

	for path, want := range map[string]fs.FileMode{
		"/run/netlab":                                0o700,
		"/run/netlab/locks":                          0o700,
		"/run/netlab/labs/" + name:                   0o700,
		"/run/netlab/locks/" + name + ".lock":        0o600,
		"/run/netlab/locks/ovs-users.lock":           0o600,
		"/run/netlab/labs/" + name + "/journal.json": 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}

	// The user tries to hold the lab's lock and the private OVS users'
	// lock, in the background, while root takes the lab down.
	for _, lock := range []string{name + ".lock", "ovs-users.lock"} {
		r := u.run(nil, "flock", "-n", filepath.Join("/run/netlab/locks", lock), "true")
		if r.code == 0 || !strings.Contains(r.out, "Permission denied") {
			t.Errorf("uid 65534 could open %s: exit %d\n%s", lock, r.code, r.out)
		}
	}
	argv := u.argv(nil, "flock", filepath.Join("/run/netlab/locks", name+".lock"), "sleep", "30")
	holder := exec.Command(argv[0], argv[1:]...)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		holder.Process.Kill()
		holder.Wait()
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, netlabBin, "down", name).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("root's down hangs while uid 65534 holds the lab's lock:\n%s", out)
	}
	if err != nil {
		t.Fatalf("root's down: %v\n%s", err, out)
	}
	sameMachine(t, before)
}

// TestForgedJournal: a user who writes a journal naming root's lab's
// namespaces and links, and points netlab at it, removes nothing of root's:
// a user's netlab works in the user's sandbox, which sees none of them.
func TestForgedJournal(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	name := rootLab(t, u)
	prefix := strings.TrimSuffix(name, "adv")

	forged := filepath.Join(u.dir, "state")
	journal := `{"lab": "` + name + `", "namespaces": ["` + prefix + `a", "` + prefix + `b"], "host_links": ["` + prefix + `pa", "` + prefix + `pb", "` + prefix + `br"], "host_sysctls": {"net.ipv4.ip_forward": "0"}}`
	dir := filepath.Join(forged, "labs", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal.json"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, "chown", run(t, "", nil, "chown", "-R", "65534:65534", forged))
	for _, args := range [][]string{{"down", name}, {"down", "--all"}} {
		r := u.run([]string{"NETLAB_ROOT=" + forged}, netlabBin, args...)
		t.Logf("uid 65534: netlab %s with a forged journal: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
	}
	if out, err := exec.Command("ip", "netns", "exec", prefix+"a", "ping", "-c1", "-W2", "192.168.79.2").CombinedOutput(); err != nil {
		t.Errorf("root's lab broken by the user's forged journal: %v\n%s", err, out)
	}
	if got := must(t, "root's up", netlab(t, "up", "--prefix", prefix, u.file("adv.yaml", adversaryLab))); !strings.Contains(got, "up to date") {
		t.Errorf("root's lab changed: %s", got)
	}
	must(t, "root's down", netlab(t, "down", name))
	sameMachine(t, before)
}
