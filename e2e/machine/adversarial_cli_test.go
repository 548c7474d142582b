package machine

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// advLab is the smallest lab with a link: two namespaces and a veth. It
// needs no /dev/net/tun and no Open vSwitch.
const advLab = `name: adv
namespaces:
  a:
    interfaces:
      v0: {peer: b/v1, addresses: [10.9.0.1/24]}
  b:
    interfaces:
      v1: {addresses: [10.9.0.2/24]}
`

// TestAdversarialSandboxExec: `netlab sandbox exec NAME -- CMD` runs a
// command with no arguments of its own (it panicked), with or without the
// "--", and passes its exit status on.
func TestAdversarialSandboxExec(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	sb := prefix() + "exec"
	must(t, "sandbox create", netlab(t, "sandbox", "create", sb))
	t.Cleanup(func() { netlab(t, "sandbox", "rm", sb) })
	for _, c := range []struct {
		cmd  []string
		code int
		want string
	}{
		{[]string{"--", "id"}, 0, "uid=0(root)"},
		{[]string{"id"}, 0, "uid=0(root)"},
		{[]string{"--", "true"}, 0, ""},
		{[]string{"--", "false"}, 1, ""},
		{[]string{"--", "sh", "-c", "echo in $NETLAB_IN_SANDBOX; exit 7"}, 7, "in " + sb},
	} {
		r := netlab(t, append([]string{"sandbox", "exec", sb}, c.cmd...)...)
		if r.code != c.code || !strings.Contains(r.out, c.want) || strings.Contains(r.out, "panic") {
			t.Errorf("netlab sandbox exec %s %q: exit %d, want %d and %q:\n%s", sb, c.cmd, r.code, c.code, c.want, r.out)
		}
	}
	must(t, "sandbox rm", netlab(t, "sandbox", "rm", sb))
	sameMachine(t, before)
}

// TestAdversarialUsageNeedsNoSandbox: a lab verb given arguments it cannot
// take says so (usage, exit 2) before it makes or enters a sandbox. As a
// user who cannot make one (no user namespaces), the usage still comes,
// not a sandbox error.
func TestAdversarialUsageNeedsNoSandbox(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := newUser(t)
	for _, args := range [][]string{
		{"down"},
		{"down", "a", "b"},
		{"--sandbox", "other", "down", "--all", "lab"},
		{"status", "a", "b"},
		{"plan"},
		{"check"},
		{"flows"},
		{"graph"},
		{"impair", "lab", "a/b"},
		{"impair", "lab", "a/b", "--reset", "--clear"},
		{"exec", "lab"},
		{"exec", "lab", "ns", "--"},
		{"capture", "lab"},
		{"capture", "lab", "a/b", "--snaplen", "1099511627776"},
		{"--sandbox=", "status"},
		{"--sandbox", "x", "doctor"},
		{"sandbox", "create", "Bad"},
		{"sandbox", "exec", "../x", "--", "id"},
	} {
		r := u.limited(netlabBin, args...)
		if r.code != 2 || strings.Contains(r.out, "namespace") && !strings.Contains(r.out, "Usage") {
			t.Errorf("netlab %q as a user who cannot make a sandbox: exit %d, want 2 and no sandbox:\n%s", args, r.code, r.out)
		}
	}
	if p := processesOf(t, "65534"); p != "" {
		t.Errorf("processes of the user left:\n%s", p)
	}
	if _, err := os.Stat(userState); !os.IsNotExist(err) {
		t.Errorf("a usage error left %s (%v)", userState, err)
	}
	sameMachine(t, before)
}

// TestAdversarialCaptureFileMode: a capture's file is its owner's alone
// (packets carry the lab's secrets), even under a umask of 0: mode 0600,
// as dumpcap writes them. The user captures in their sandbox.
func TestAdversarialCaptureFileMode(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)
	u.mustNetlab("up", u.file("adv.yaml", advLab))
	mine := filepath.Join(u.dir, "captures")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mine, "a.pcapng")
	r := u.run(nil, "sh", "-c", `umask 000 && exec "$0" "$@"`, netlabBin, "capture", "adv", "a/v0", "-w", file, "--duration", "300ms")
	if r.code != 0 {
		t.Fatalf("capture as uid 65534: exit %d\n%s", r.code, r.out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o600 || st.Uid != 65534 {
		t.Errorf("capture file: mode %04o, owner %d; want 0600, 65534", st.Mode&0o777, st.Uid)
	}
	u.mustNetlab("down", "adv")
	sameMachine(t, before)
}
