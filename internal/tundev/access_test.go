package tundev_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// Why and Fix say what stops a process and what would let every user in,
// from the open's error and the file's mode.
func TestAccessWhyFix(t *testing.T) {
	for _, c := range []struct {
		a        tundev.Access
		why, fix string // substrings; "" for an empty answer
	}{
		{tundev.Access{Opens: true, Mode: 0o666}, "", ""},
		{tundev.Access{Opens: true, Mode: 0o600}, "", "sudo chmod 0666 /dev/net/tun"},
		{tundev.Access{Err: syscall.EACCES, Mode: 0o600, EUID: 1000}, "mode 0600 (owner uid 0, group gid 0) and this user (uid 1000) cannot open it", `MODE="0666"`},
		{tundev.Access{Err: syscall.ENOENT, Missing: true}, "/dev/net/tun is missing", "mknod -m 0666 /dev/net/tun c 10 200"},
		{tundev.Access{Err: syscall.ENXIO, Mode: 0o666}, "no TUN/TAP driver", "CONFIG_TUN"},
		{tundev.Access{Err: syscall.EPERM, Mode: 0o666}, "a container's device rules", "10:200"},
	} {
		why, fix := c.a.Why(), c.a.Fix()
		if (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("%+v: Why %q, want %q", c.a, why, c.why)
		}
		if (c.fix == "") != (fix == "") || !strings.Contains(fix, c.fix) {
			t.Errorf("%+v: Fix %q, want %q", c.a, fix, c.fix)
		}
	}
}

// CheckAccess as root opens the device whatever its mode.
func TestCheckAccessAsRoot(t *testing.T) {
	testkit.RequireRoot(t, "root opens /dev/net/tun")
	a := tundev.CheckAccess()
	if !a.Opens || a.Why() != "" || a.Err != nil || a.EUID != 0 {
		t.Errorf("as root: %+v, why %q", a, a.Why())
	}
}

// A TAP's owner and group attach without any capability, with a device
// file they may open; the TAP keeps its flags. They cannot create a
// device, nor attach to root's, and with a device file of mode 0600
// CheckAccess says so, and what to do.
func TestAsOwner(t *testing.T) {
	ns, h := newNS(t)
	testkit.RequireRoot(t, "users", "setpriv", "mknod")
	create(t, h, "tapo", tundev.Spec{Kind: tundev.TAP, VnetHdr: true, MultiQueue: true, Owner: 65534, Group: 65534})
	create(t, h, "tapr", tundev.Spec{Kind: tundev.TAP, Owner: 0, Group: 0})
	before := tunFlags(t, ns, "tapo")

	out, err := asNobody(t, ns, "0666", "attach", "tapo")
	if err != nil || !strings.Contains(out, "attached: vnet true") || !strings.Contains(out, "create: add tap nobody0: TUNSETIFF: operation not permitted") {
		t.Errorf("as tapo's owner: %v\n%s", err, out)
	}
	if after := tunFlags(t, ns, "tapo"); after != before {
		t.Errorf("tapo: tun_flags %s after its owner attached, were %s", after, before)
	}
	if exists(ns, "nobody0") {
		t.Errorf("nobody created nobody0")
	}
	out, err = asNobody(t, ns, "0666", "attach", "tapr")
	if err == nil || !strings.Contains(out, "attach tap tapr: queue 0: TUNSETIFF: operation not permitted (only the device's owner and group") {
		t.Errorf("nobody on root's TAP: %v\n%s", err, out)
	}
	out, err = asNobody(t, ns, "0600", "attach", "tapo")
	if err == nil || !strings.Contains(out, "attach tap tapo: queue 0: open /dev/net/tun: permission denied") {
		t.Errorf("nobody with a device file of mode 0600: %v\n%s", err, out)
	}

	out, err = asNobody(t, ns, "0600", "access")
	if err != nil || !strings.Contains(out, "opens=false") || !strings.Contains(out, "has mode 0600 (owner uid 0, group gid 0) and this user (uid 65534)") ||
		!strings.Contains(out, "fix=the stock udev rule") {
		t.Errorf("CheckAccess as nobody with a device file of mode 0600: %v\n%s", err, out)
	}
	out, err = asNobody(t, ns, "0666", "access")
	if err != nil || !strings.Contains(out, "opens=true\nwhy=\nfix=\n") {
		t.Errorf("CheckAccess as nobody with a device file of mode 0666: %v\n%s", err, out)
	}
}

// asNobody runs this test binary as the child what (see TestMain) with
// args, in namespace ns, as uid and gid 65534 with no capability, and with a
// /dev/net/tun of mode mode of its own: a node made in the private mount
// namespace `ip netns exec` gives it, so the machine's device is never
// changed.
func asNobody(t *testing.T, ns, mode, what string, args ...string) (string, error) {
	t.Helper()
	const script = `m=$1; shift; mount -t tmpfs netlab-test /dev/net && mknod -m "$m" /dev/net/tun c 10 200 && ` +
		`exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all -- "$@"`
	argv := append([]string{"netns", "exec", ns, "sh", "-c", script, "sh", mode, nobodyBinary(t)}, args...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// nobodyBinary copies the test binary where uid 65534 may run it (the
// go tool's build directory is its user's alone).
func nobodyBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "tundev.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
