package machine

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// requireRoot skips a test that cannot run here, or fails it under
// NETLAB_E2E=1.
func requireRoot(t *testing.T) {
	t.Helper()
	testkit.RequireRoot(t, "sandboxes, users, the machine's own stack", "ip", "ping", "ovs-vsctl", "ovs-vswitchd", "iperf3", "nft", "setpriv", "unshare", "nsenter", "mknod")
}

// result is a finished command: its output (stdout and stderr interleaved)
// and exit status.
type result struct {
	out  string
	code int
}

func run(t *testing.T, dir string, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return result{buf.String(), exit.ExitCode()}
	}
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return result{buf.String(), 0}
}

// must fails the test unless r is a success.
func must(t *testing.T, what string, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", what, r.code, r.out)
	}
	return r.out
}

// netlab runs the binary under test as root, on the machine.
func netlab(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, "", nil, netlabBin, args...)
}

// user runs commands as uid 65534 with no capability, in a directory of
// files that user may read, as an ordinary user of a stock Debian machine:
// /dev/net/tun of mode 0666. On this project's machines the device is
// 0600, so each command gets a node of the test's own, of mode tun, bound
// over /dev/net/tun in a private mount namespace (the machine's device is
// never changed); the sandbox a command makes copies that view.
type user struct {
	t   *testing.T
	dir string
	tun string // the mode of /dev/net/tun the user sees: "0666" (stock), "0600", or "" the machine's
}

// withTun makes the node (on a tmpfs of its own: /tmp may be nodev), binds
// it over /dev/net/tun, and execs the command; $1 is the mode.
const withTun = `m=$1; shift; d=$(mktemp -d) && mount -t tmpfs -o mode=0755 netlab-test-tun "$d" && mknod -m "$m" "$d/tun" c 10 200 && ` +
	`mount --bind "$d/tun" /dev/net/tun && umount -l "$d" && rmdir "$d" && exec "$@"`

// soleUser is newUser for a test that plays uid 65534 alone: it fails when
// that user already runs processes, and at cleanup, whatever failed, takes
// down every lab and sandbox of the user.
func soleUser(t *testing.T) *user {
	t.Helper()
	if p := processesOf(t, "65534"); p != "" {
		t.Fatalf("uid 65534 already runs processes; this test plays that user:\n%s", p)
	}
	u := newUser(t)
	t.Cleanup(func() {
		u.netlab("down", "--all")
		u.netlab("sandbox", "rm", "--all")
	})
	return u
}

func newUser(t *testing.T) *user {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-user-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &user{t: t, dir: dir, tun: "0666"}
}

// file writes a file the user may read into their directory.
func (u *user) file(name, text string) string {
	u.t.Helper()
	path := filepath.Join(u.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		u.t.Fatal(err)
	}
	return path
}

// lab copies a shipped lab into the user's directory.
func (u *user) lab(name string) string {
	u.t.Helper()
	b, err := os.ReadFile(filepath.Join("../../labs", name))
	if err != nil {
		u.t.Fatal(err)
	}
	return u.file(name, string(b))
}

// argv is the command line that runs name with args as the user, with env.
func (u *user) argv(env []string, name string, args ...string) []string {
	asUser := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--",
		"env", "-u", "XDG_RUNTIME_DIR", "HOME=" + u.dir}
	asUser = append(append(asUser, env...), name)
	asUser = append(asUser, args...)
	if u.tun == "" {
		return asUser // the machine's /dev/net/tun, whatever its mode
	}
	return append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", withTun, "sh", u.tun}, asUser...)
}

// with is the user for a subtest: failures are the subtest's.
func (u *user) with(t *testing.T) *user {
	c := *u
	c.t = t
	return &c
}

// run runs a command as the user.
func (u *user) run(env []string, name string, args ...string) result {
	u.t.Helper()
	argv := u.argv(env, name, args...)
	return run(u.t, u.dir, nil, argv[0], argv[1:]...)
}

// netlab runs netlab as the user.
func (u *user) netlab(args ...string) result {
	u.t.Helper()
	return u.run(nil, netlabBin, args...)
}

// limited runs a command as the user on a machine where no user may make a
// user namespace: in a user namespace of the test's own (ids 0-65535 as on
// the machine) whose user.max_user_namespaces is 0, which limits only that
// namespace and those below it.
func (u *user) limited(name string, args ...string) result {
	u.t.Helper()
	// No node of the test's own: mknod is for the machine's root only.
	plain := *u
	plain.tun = ""
	argv := plain.argv(nil, name, args...)
	cmd := exec.Command("sh", append([]string{"-c", `echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`, "sh"}, argv...)...)
	cmd.Dir = u.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappingsEnableSetgroups: true,
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return result{string(out), exit.ExitCode()}
	}
	if err != nil {
		u.t.Fatal(err)
	}
	return result{string(out), 0}
}

// mustNetlab runs netlab as the user and fails the test unless it succeeds.
func (u *user) mustNetlab(args ...string) string {
	u.t.Helper()
	return must(u.t, "netlab "+strings.Join(args, " ")+" as uid 65534", u.netlab(args...))
}

// processesOf lists the live processes of uid 65534 on the machine.
func processesOf(t *testing.T, uid string) string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-a", "-u", uid).Output()
	var live []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			if b, err := os.ReadFile("/proc/" + f[0] + "/stat"); err == nil && !strings.Contains(string(b), ") Z") {
				live = append(live, line)
			}
		}
	}
	return strings.Join(live, "\n")
}

// sameMachine fails the test when the machine differs from before.
func sameMachine(t *testing.T, before string) {
	t.Helper()
	if after := testkit.Fingerprint(); after != before {
		t.Errorf("the machine changed:\n%s", testkit.Diff(before, after))
	}
}

// prefix returns a short unique prefix ("m1a2-").
func prefix() string { return "m" + strings.ToLower(rand.Text()[:3]) + "-" }

// iperfReceived finds the receiver's bits per second in iperf3 -J output.
var iperfReceived = regexp.MustCompile(`"sum_received":\s*\{[^}]*"bits_per_second":\s*([0-9.e+]+)`)

// received is what the receiver of an iperf3 -J run got, in bits per
// second.
func received(t *testing.T, out string) float64 {
	t.Helper()
	m := iperfReceived.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("iperf3: no sum_received:\n%s", out)
	}
	bps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("iperf3: bits_per_second %q: %v", m[1], err)
	}
	return bps
}
