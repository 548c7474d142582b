package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// uplink gives this test's host (the sandbox's network namespace) what a
// machine has: an uplink u0 with addresses and a default route in both
// families, and a static route, all put there by the test, not by netlab. Its
// other end is in the host too: nothing is ever sent beyond the sandbox.
func uplink(t *testing.T) (routes func() string) {
	t.Helper()
	sh(t, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u0p")
	t.Cleanup(func() { run(t, nil, "ip", "link", "del", "u0") })
	// No link-local addresses: their duplicate address detection would
	// change the host while the test compares it.
	sh(t, "ip", "link", "set", "u0", "addrgenmode", "none")
	sh(t, "ip", "link", "set", "u0p", "addrgenmode", "none")
	sh(t, "ip", "addr", "add", "192.168.77.2/24", "dev", "u0")
	sh(t, "ip", "addr", "add", "fd00:77:1::2/64", "dev", "u0", "nodad")
	sh(t, "ip", "link", "set", "u0p", "up")
	sh(t, "ip", "link", "set", "u0", "up")
	sh(t, "ip", "route", "add", "default", "via", "192.168.77.1", "proto", "dhcp")
	sh(t, "ip", "-6", "route", "add", "default", "via", "fd00:77:1::1", "proto", "ra")
	sh(t, "ip", "route", "add", "203.0.113.0/24", "via", "192.168.77.1", "metric", "50", "proto", "static")
	return func() string {
		return sh(t, "ip", "route", "show", "table", "all") + sh(t, "ip", "-6", "route", "show", "table", "all")
	}
}

const routedHost = `name: hr
bridges:
  br0: {type: linux, addresses: [10.77.0.1/24, fd00:77::1/64]}
namespaces:
  gw:
    interfaces:
      eth0: {peer: br0/pgw, addresses: [10.77.0.2/24, fd00:77::2/64]}
host:
  routes:
ROUTES
`

func routedLab(t *testing.T, dir, name string, routes ...string) string {
	text := strings.Replace(routedHost, "ROUTES", "    - "+strings.Join(routes, "\n    - "), 1)
	return writeFile(t, dir, name, text)
}

// TestHostRoutesAreOwned: a lab's host route to a destination the machine
// already routes would replace the machine's route (or take its traffic) and
// leave the machine without it after down. validate, plan and up refuse it
// at its line, naming the route that is there, and change nothing; a lab's
// own host routes are installed and removed, and nothing else is.
func TestHostRoutesAreOwned(t *testing.T) {
	requireRoot(t)
	routes := uplink(t)
	before := fingerprint(t)
	dir := t.TempDir()
	p := newPrefix(t)

	defaults := routedLab(t, dir, "defaults.yaml", "{to: default, via: 10.77.0.2}", `{to: default, via: "fd00:77::2"}`)
	static := routedLab(t, dir, "static.yaml", "{to: 203.0.113.0/24, via: 10.77.0.2, metric: 10}")
	for _, verb := range []string{"validate", "plan", "up"} {
		for file, wants := range map[string][]string{
			defaults: {
				"defaults.yaml:10:7: host.routes[0]: the host already has a route to default (0.0.0.0/0) that is not netlab's (default via 192.168.77.1 dev u0 proto dhcp)",
				"defaults.yaml:11:7: host.routes[1]: the host already has a route to default (::/0) that is not netlab's (default via fd00:77:1::1 dev u0 proto ra metric 1024)",
			},
			static: {"static.yaml:10:7: host.routes[0]: the host already has a route to 203.0.113.0/24 that is not netlab's (203.0.113.0/24 via 192.168.77.1 dev u0 proto static metric 50)"},
		} {
			r := netlab(t, verb, "--prefix", p, file)
			if r.code != 2 {
				t.Errorf("%s %s: exit %d, want 2 (a clash)\n%s", verb, filepath.Base(file), r.code, r.out)
			}
			for _, want := range wants {
				if !strings.Contains(r.out, want) {
					t.Errorf("%s %s: output lacks %q:\n%s", verb, filepath.Base(file), want, r.out)
				}
			}
		}
	}
	sameHost(t, before)

	// Routes of its own: installed with netlab's protocol, and a second
	// lab's route to the same destination is refused as the first's.
	own := routedLab(t, dir, "own.yaml", "{to: 198.51.100.0/24, via: 10.77.0.2}", `{to: "2001:db8:77::/48", via: "fd00:77::2"}`)
	mustNetlab(t, "up", "-q", "--prefix", p, own)
	downed := false
	t.Cleanup(func() {
		if !downed {
			netlab(t, "down", p+"hr")
		}
	})
	if got := routes(); !strings.Contains(got, "198.51.100.0/24 via 10.77.0.2 dev "+p+"br0 proto 78") ||
		!strings.Contains(got, "2001:db8:77::/48 via fd00:77::2 dev "+p+"br0 proto 78") {
		t.Errorf("the lab's host routes are not there:\n%s", got)
	}
	if got := mustNetlab(t, "up", "--prefix", p, own); !strings.Contains(got, "up to date") {
		t.Errorf("second up of a lab with host routes: %s", got)
	}
	q := newPrefix(t)
	for q == p {
		q = newPrefix(t)
	}
	other := strings.Replace(strings.Replace(readFile(t, own), "10.77.0", "10.78.0", -1), "fd00:77:", "fd00:78:", -1)
	otherFile := writeFile(t, dir, "other.yaml", strings.Replace(other, "name: hr", "name: ho", 1))
	r := netlab(t, "up", "--prefix", q, otherFile)
	if r.code != 2 || !strings.Contains(r.out, "the host already has a route to 198.51.100.0/24 that netlab installed for another lab") {
		t.Errorf("a second lab's route to the first's destination: exit %d\n%s", r.code, r.out)
	}
	mustNetlab(t, "down", p+"hr")
	downed = true
	after := routes()
	for _, want := range []string{"default via 192.168.77.1 dev u0 proto dhcp", "default via fd00:77:1::1 dev u0 proto ra metric 1024",
		"203.0.113.0/24 via 192.168.77.1 dev u0 proto static metric 50"} {
		if !strings.Contains(after, want) {
			t.Errorf("after down the machine lost %q:\n%s", want, after)
		}
	}
	sameHost(t, before)
}

// TestSharedHostSysctl: two labs that set one host sysctl share it. The
// first lab's down leaves it for the second (which shows no drift), the
// last one's down restores the value from before the first.
func TestSharedHostSysctl(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	forward := func() string {
		return strings.TrimSpace(sh(t, "sysctl", "-n", "net.ipv4.ip_forward"))
	}
	start := forward()
	if start != "0" {
		t.Fatalf("ip_forward is %s in this test's host; the test needs 0 to see a restore", start)
	}
	p, q := newPrefix(t), newPrefix(t)
	for q == p {
		q = newPrefix(t)
	}
	labUp(t, "../labs/blue-red-linux.yaml", p, "blue-red-lx")
	mustNetlab(t, "up", "-q", "--prefix", q, "../labs/blue-red-linux.yaml")
	t.Cleanup(func() { netlab(t, "down", q+"blue-red-lx") })
	if forward() != "1" {
		t.Fatalf("ip_forward not set by the labs")
	}
	out := mustNetlab(t, "down", p+"blue-red-lx")
	if !strings.Contains(out, "kept: lab "+q+"blue-red-lx holds it too") {
		t.Errorf("down of the first lab does not say the sysctl stays:\n%s", out)
	}
	if forward() != "1" {
		t.Errorf("the first lab's down took ip_forward from the second")
	}
	if got := mustNetlab(t, "up", "--prefix", q, "../labs/blue-red-linux.yaml"); !strings.Contains(got, "up to date") {
		t.Errorf("the second lab drifted after the first's down: %s", got)
	}
	ping(t, q+"blue", "10.0.1.2")
	mustNetlab(t, "down", q+"blue-red-lx")
	if forward() != start {
		t.Errorf("ip_forward is %s after the last lab's down, want %s", forward(), start)
	}
	sameHost(t, before)

	// Two labs that want different values: the second is refused.
	dir := t.TempDir()
	off := writeFile(t, dir, "off.yaml", strings.Replace(readFile(t, "../labs/blue-red-linux.yaml"), "net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0", 1))
	labUp(t, "../labs/blue-red-linux.yaml", p, "blue-red-lx")
	r := netlab(t, "up", "--prefix", q, off)
	if r.code != 2 || !strings.Contains(r.out, "host sysctl net.ipv4.ip_forward is held at 1 by lab "+p+"blue-red-lx, which is up; this lab wants 0") {
		t.Errorf("a lab wanting another value of a held sysctl: exit %d\n%s", r.code, r.out)
	}
}

// TestDownWithFullDisk: when netlab's state directory is full (on many
// machines /run's disk is the root disk), down cannot record that it started,
// but it removes the lab all the same and says what it could not record.
func TestDownWithFullDisk(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	root := t.TempDir()
	if err := syscall.Mount("netlab-full", root, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(root, syscall.MNT_DETACH) })
	env := []string{"NETLAB_ROOT=" + root}
	p := newPrefix(t)
	if r := run(t, env, netlabBin, "up", "-q", "--prefix", p, "../labs/blue-red-linux.yaml"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s", r.code, r.out)
	}
	t.Cleanup(func() { run(t, env, netlabBin, "down", p+"blue-red-lx") })
	fill(t, filepath.Join(root, "fill"))
	r := run(t, env, netlabBin, "down", p+"blue-red-lx")
	if r.code != 0 {
		t.Errorf("down with a full state directory: exit %d\n%s", r.code, r.out)
	}
	if !strings.Contains(r.out, "could not record the down in the journal") {
		t.Errorf("down does not say what it could not record:\n%s", r.out)
	}
	sameHost(t, before)
}

// fill writes path until its file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// TestPrefixCollision: a prefix and a lab name are joined as they are, so
// --prefix Pq of lab "ab" and --prefix P of lab "qab" make one name. The
// second up is refused (it would take the first's objects for its own and
// remove its namespaces); the first lab is untouched.
func TestPrefixCollision(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	pair := readFile(t, "testdata/pair.yaml")
	first := writeFile(t, dir, "ab.yaml", strings.Replace(pair, "name: pair", "name: ab", 1))
	second := writeFile(t, dir, "qab.yaml", strings.Replace(strings.Replace(pair, "name: pair", "name: qab", 1), "\n  a:", "\n  x:", 1))
	labUp(t, first, p+"q", "ab")
	for _, verb := range []string{"plan", "up"} {
		r := netlab(t, verb, "--prefix", p, second)
		want := "qab.yaml:3:1: name: lab " + p + "qab is up already as lab ab with --prefix " + p + "q; this is lab qab with --prefix " + p + ", which makes the same name: choose another prefix"
		if r.code != 2 || !strings.Contains(r.out, want) {
			t.Errorf("%s of the colliding lab: exit %d, want 2 and %q:\n%s", verb, r.code, want, r.out)
		}
	}
	ping(t, p+"qa", "192.168.77.2")
	if got := mustNetlab(t, "up", "--prefix", p+"q", first); !strings.Contains(got, "up to date") {
		t.Errorf("the first lab was disturbed: %s", got)
	}
	mustNetlab(t, "down", p+"qab")
	sameHost(t, before)
}

// TestFileLimitChecked: a lab too big for the files this process may open
// is refused before anything is made, not after thousands of objects.
func TestFileLimitChecked(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	var b strings.Builder
	b.WriteString("name: many\nbridges:\n  br0: {type: linux}\nnamespaces:\n")
	for i := range 100 {
		fmt.Fprintf(&b, "  n%d:\n    interfaces:\n      e0: {peer: br0/p%d}\n", i, i)
	}
	file := writeFile(t, t.TempDir(), "many.yaml", b.String())
	p := newPrefix(t)
	// The files netlab holds do not grow with the lab: 100 namespaces come
	// up, up again and go down within 300 (it keeps some 57 open at once
	// then, and opens the others again as it needs them).
	for _, verb := range []string{"up", "up", "down"} {
		if r := run(t, nil, "prlimit", "--nofile=300:300", netlabBin, verb, "--prefix", p, file); r.code != 0 {
			t.Fatalf("%s with 300 files: exit %d\n%s", verb, r.code, r.out)
		}
	}
	sameHost(t, before)
	// Below what netlab needs whatever the lab's size, it refuses before
	// anything is made.
	for _, verb := range []string{"validate", "up"} {
		r := run(t, nil, "prlimit", "--nofile=100:100", netlabBin, verb, "--prefix", p, file)
		if r.code != 2 || !strings.Contains(r.out, "namespaces: 100 namespaces: netlab needs about 176 open files whatever the lab's size") {
			t.Errorf("%s with 100 files: exit %d\n%s", verb, r.code, r.out)
		}
	}
	sameHost(t, before)
}
