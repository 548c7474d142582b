package machine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// userState is where uid 65534's sandboxes are registered (no
// XDG_RUNTIME_DIR): gone when its last sandbox goes.
var userState = filepath.Join(os.TempDir(), "netlab-65534")

// checkPasses runs `netlab check` as the user and wants every expectation
// to pass.
func checkPasses(t *testing.T, u *user, args ...string) {
	t.Helper()
	out := u.mustNetlab(append([]string{"check"}, args...)...)
	if !strings.Contains(out, " 0 failed") {
		t.Errorf("check %v:\n%s", args, out)
	}
}

// tcpAsUser runs iperf3 between two namespaces of a lab in the user's
// sandbox and returns the receiver's bits per second.
func tcpAsUser(t *testing.T, u *user, lab, server, client, addr string, sandbox ...string) float64 {
	t.Helper()
	pre := append([]string{}, sandbox...)
	pidfile := "/tmp/netlab-iperf3-" + lab + ".pid"
	u.mustNetlab(append(pre, "exec", lab, server, "--", "iperf3", "-s", "-1", "-D", "-I", pidfile)...)
	var r result
	for try := 0; try < 20; try++ {
		if r = u.netlab(append(pre, "exec", lab, client, "--", "iperf3", "-c", addr, "-t", "1", "-J", "--connect-timeout", "3000")...); r.code == 0 {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("iperf3 %s -> %s in the user's sandbox: exit %d\n%s", client, server, r.code, r.out)
	}
	bps := received(t, r.out)
	if bps <= 0 {
		t.Fatalf("iperf3: no data received:\n%s", r.out)
	}
	t.Logf("TCP %s -> %s in a rootless sandbox: %.0f Mbit/s", client, server, bps/1e6)
	return bps
}

// TestRootless is the story of an ordinary user (uid 65534, no capability)
// on a stock machine: their labs come up in their sandbox, with the same
// names and addresses as anyone's, work as on the machine, and go with
// `netlab down --all`, leaving no process and no file of theirs.
func TestRootless(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := soleUser(t)

	t.Run("blue-red through the learning switch", func(t *testing.T) {
		u := u.with(t)
		out := u.mustNetlab("up", u.lab("blue-red.yaml"))
		if !strings.Contains(out, "system (AF_PACKET) ports") || !strings.Contains(out, "user namespace") {
			t.Errorf("up does not say why the ports are system ports:\n%s", out)
		}
		if again := u.mustNetlab("up", u.lab("blue-red.yaml")); !strings.Contains(again, "lab blue-red: up to date") {
			t.Errorf("second up:\n%s", again)
		}
		checkPasses(t, u, "blue-red")
		tcpAsUser(t, u, "blue-red", "red", "blue", "10.0.0.2")
		tcpAsUser(t, u, "blue-red", "blue", "red", "fd00:10::1")
		flows := u.mustNetlab("flows", "blue-red")
		for _, want := range []string{"-> blue/veth1", "-> red/veth3"} {
			if !strings.Contains(flows, want) {
				t.Errorf("the learning switch did not learn %s:\n%s", want, flows)
			}
		}
		st := u.mustNetlab("status", "blue-red")
		for _, want := range []string{"drift: none", "veth0(1, system)", "10.0.0.254/24"} {
			if !strings.Contains(st, want) {
				t.Errorf("status lacks %q:\n%s", want, st)
			}
		}
		if g := u.mustNetlab("graph", "blue-red", "--format", "mermaid"); !strings.Contains(g, "ovsbr0") {
			t.Errorf("graph of the sandboxed lab:\n%s", g)
		}
	})

	t.Run("Linux bridge in a second sandbox", func(t *testing.T) {
		u := u.with(t)
		u.mustNetlab("--sandbox", "lx", "up", u.lab("blue-red-linux.yaml"))
		checkPasses(t, u, "--sandbox", "lx", "blue-red-lx")
		tcpAsUser(t, u, "blue-red-lx", "red", "blue", "10.0.1.2", "--sandbox", "lx")
		var list []struct {
			Name   string   `json:"name"`
			UserNS bool     `json:"user_namespace"`
			Alive  bool     `json:"alive"`
			Labs   []string `json:"labs"`
		}
		if err := json.Unmarshal([]byte(u.mustNetlab("sandbox", "ls", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(list)
		if len(list) != 2 || got != "[{default true true [blue-red]} {lx true true [blue-red-lx]}]" {
			t.Errorf("sandbox ls: %s", got)
		}
	})

	t.Run("NAT to an internet namespace", func(t *testing.T) {
		u := u.with(t)
		// Its blue and red would clash with blue-red's in this sandbox.
		u.mustNetlab("up", "--prefix", "n-", u.lab("nat.yaml"))
		checkPasses(t, u, "n-nat")
	})

	t.Run("a reflector answers a whole subnet", func(t *testing.T) {
		u := u.with(t)
		u.mustNetlab("up", u.lab("tun-reflector.yaml"))
		checkPasses(t, u, "tun-refl")
		st := u.mustNetlab("status", "tun-refl")
		if !strings.Contains(st, "netlab reflect on") {
			t.Errorf("no reflector in status:\n%s", st)
		}
	})

	t.Run("a TAP of the user's, its MAC set with no capability", func(t *testing.T) {
		u := u.with(t)
		file := u.file("tap.yaml", `name: tap
namespaces:
  vm:
    taps:
      tap0: {owner: 65534, group: 65534, mac: "d6:27:b8:30:55:92", vnet-hdr: true}
`)
		u.mustNetlab("up", file)
		if st := u.mustNetlab("status", "tap"); !strings.Contains(st, "d6:27:b8:30:55:92") || !strings.Contains(st, "drift: none") {
			t.Errorf("status of the TAP:\n%s", st)
		}
		noCaps := []string{"exec", "tap", "vm", "--", "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"}
		if r := u.netlab(append(noCaps, "ip", "link", "set", "dev", "tap0", "address", "02:11:22:33:44:55")...); r.code == 0 || !strings.Contains(r.out, "Operation not permitted") {
			t.Errorf("ip link set without capabilities: exit %d, want EPERM:\n%s", r.code, r.out)
		}
		u.mustNetlab(append(noCaps, netlabBin, "tap-mac", "tap0", "02:11:22:33:44:55")...)
		if out := u.mustNetlab("exec", "tap", "vm", "--", "ip", "link", "show", "tap0"); !strings.Contains(out, "02:11:22:33:44:55") {
			t.Errorf("tap-mac did not change the MAC:\n%s", out)
		}
		if st := u.mustNetlab("status", "tap"); !strings.Contains(st, "drift: 1 actions") {
			t.Errorf("the changed MAC is not drift:\n%s", st)
		}
		u.mustNetlab("up", file) // puts the file's MAC back
		u.mustNetlab("down", "tap")
	})

	t.Run("an emulated link: delay without the kernel's netem", func(t *testing.T) {
		u := u.with(t)
		file := u.file("emu.yaml", `name: emu
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.63.0.1/24], impair: {delay: 15ms, emulator: userspace}}
  b:
    interfaces:
      eth0: {addresses: [10.63.0.2/24], impair: {loss: 0, delay: 5ms}}
`)
		if out := u.mustNetlab("up", file); !strings.Contains(out, "netlab emulate --ns a --dev eth0") {
			t.Errorf("up in the user's sandbox:\n%s", out)
		}
		out := u.mustNetlab("exec", "emu", "a", "--", "ping", "-c", "5", "-i", "0.05", "-q", "10.63.0.2")
		var least float64
		if i := strings.Index(out, "= "); i >= 0 {
			fmt.Sscanf(out[i+2:], "%g", &least)
		}
		if least < 19.7 {
			t.Errorf("15 ms + 5 ms of delay in a rootless sandbox: least round trip %.2f ms\n%s", least, out)
		}
		st := u.mustNetlab("status", "emu")
		for _, want := range []string{"netlab emulate on a/eth0 <-> b/eth0", "drift: none", "impair: delay 15ms"} {
			if !strings.Contains(st, want) {
				t.Errorf("status lacks %q:\n%s", want, st)
			}
		}
		// The emulator is the user's on the machine, with no capability.
		if p := processesOf(t, "65534"); !strings.Contains(p, "netlab emulate") {
			t.Errorf("no emulator among the user's processes:\n%s", p)
		}
		u.mustNetlab("down", "emu")
	})

	t.Run("services with their files, names and logs", func(t *testing.T) {
		u := u.with(t)
		file := u.file("svc.yaml", `name: svc
namespaces:
  client:
    interfaces:
      eth0: {peer: server/eth0, addresses: [10.62.0.1/24]}
  server:
    interfaces:
      eth0: {addresses: [10.62.0.2/24]}
    files:
      /etc/greeting: "hello from the server\n"
    dirs: [/var/lib/srv]
    services:
      srv:
        command: [sh, -c, "cp /etc/greeting /var/lib/srv/; echo serving; exec nc -lk 7000"]
        ready: {tcp: 7000}
`)
		out := u.mustNetlab("up", "--wait", "20s", file)
		if !strings.Contains(out, "supervise server/srv") {
			t.Errorf("up in the user's sandbox:\n%s", out)
		}
		u.mustNetlab("exec", "svc", "client", "--", "nc", "-z", "-w", "2", "server", "7000")
		if got := u.mustNetlab("exec", "svc", "server", "--", "cat", "/var/lib/srv/greeting"); got != "hello from the server\n" {
			t.Errorf("the service's private dir holds %q", got)
		}
		if logs := u.mustNetlab("logs", "svc", "server/srv"); !strings.Contains(logs, "serving") {
			t.Errorf("logs:\n%s", logs)
		}
		if st := u.mustNetlab("status", "svc"); !strings.Contains(st, "service srv: running") || !strings.Contains(st, "drift: none") {
			t.Errorf("status:\n%s", st)
		}
		// Left up: down --all takes it, and no process of the user stays.
	})

	t.Run("crash after a step, then down", func(t *testing.T) {
		u := u.with(t)
		r := u.run([]string{"NETLAB_CRASH_AFTER=12"}, netlabBin, "--sandbox", "crash", "up", "--prefix", "c-", u.lab("blue-red.yaml"))
		if r.code != 99 {
			t.Fatalf("up with NETLAB_CRASH_AFTER=12: exit %d, want 99\n%s", r.code, r.out)
		}
		if ls := u.mustNetlab("sandbox", "ls"); !strings.Contains(ls, "crash") || !strings.Contains(ls, "c-blue-red") {
			t.Errorf("the crashed lab's sandbox is not listed:\n%s", ls)
		}
		out := u.mustNetlab("--sandbox", "crash", "down", "c-blue-red")
		if !strings.Contains(out, "sandbox crash: removed") {
			t.Errorf("down of the crashed lab did not remove its sandbox:\n%s", out)
		}
		if ls := u.mustNetlab("sandbox", "ls"); strings.Contains(ls, "crash") {
			t.Errorf("sandbox crash still listed:\n%s", ls)
		}
	})

	t.Run("down --all, sandbox rm", func(t *testing.T) {
		u := u.with(t)
		out := u.mustNetlab("down", "--all")
		for _, want := range []string{"lab blue-red: down", "lab n-nat: down", "lab tun-refl: down", "lab svc: down", "sandbox default: removed"} {
			if !strings.Contains(out, want) {
				t.Errorf("down --all lacks %q:\n%s", want, out)
			}
		}
		if out := u.mustNetlab("sandbox", "rm", "lx"); !strings.Contains(out, "sandbox lx: removed") {
			t.Errorf("sandbox rm:\n%s", out)
		}
		if out := u.mustNetlab("status"); !strings.Contains(out, "no labs running") {
			t.Errorf("status after down --all:\n%s", out)
		}
		if p := processesOf(t, "65534"); p != "" {
			t.Errorf("processes of the user left:\n%s", p)
		}
		if _, err := os.Stat(userState); !os.IsNotExist(err) {
			t.Errorf("the user's state directory %s left (%v)", userState, err)
		}
	})
	sameMachine(t, before)
}

// TestRootlessRefusals: what a user's sandbox cannot have is refused before
// anything is made, with the reason and the fix.
func TestRootlessRefusals(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	u := newUser(t)

	t.Run("external interface", func(t *testing.T) {
		u := u.with(t)
		file := u.file("ext.yaml", "name: ext\nbridges:\n  exbr: {type: linux, external: [eth0]}\n")
		r := u.netlab("up", file)
		if r.code != 2 || !strings.Contains(r.out, "ext.yaml:3:") || !strings.Contains(r.out, "machine's own") {
			t.Errorf("up of an external port as a user: exit %d\n%s", r.code, r.out)
		}
		if r := u.netlab("validate", file); r.code != 2 || !strings.Contains(r.out, "bridges.exbr.external[0]") {
			t.Errorf("validate: exit %d\n%s", r.code, r.out)
		}
	})

	t.Run("tun device of mode 0600", func(t *testing.T) {
		u := u.with(t)
		plain := *u
		plain.tun = "0600" // whatever the machine's is
		r := plain.netlab("up", u.lab("blue-red.yaml"))
		if r.code != 1 || !strings.Contains(r.out, "bridge ovsbr0") || !strings.Contains(r.out, "0666") {
			t.Errorf("up needing /dev/net/tun it cannot open: exit %d\n%s", r.code, r.out)
		}
		d := plain.mustNetlab("doctor")
		if !strings.Contains(d, "/dev/net/tun in a sandbox") || !strings.Contains(d, "udev") {
			t.Errorf("doctor does not explain the device:\n%s", d)
		}
	})

	t.Run("user namespaces disabled", func(t *testing.T) {
		u := u.with(t)
		// user.max_user_namespaces=0 in a user namespace of the test's own,
		// which limits only it: the machine's setting stays.
		r := u.limited(netlabBin, "up", u.lab("blue-red-linux.yaml"))
		if r.code != 1 || !strings.Contains(r.out, "user.max_user_namespaces=0") || !strings.Contains(r.out, "sysctl -w user.max_user_namespaces=") {
			t.Errorf("up without user namespaces: exit %d\n%s", r.code, r.out)
		}
		r = u.limited(netlabBin, "doctor")
		if r.code != 1 || !strings.Contains(r.out, "FAIL  sandbox") || !strings.Contains(r.out, "user.max_user_namespaces=0") {
			t.Errorf("doctor without user namespaces: exit %d\n%s", r.code, r.out)
		}
	})
	if _, err := os.Stat(userState); !os.IsNotExist(err) {
		t.Errorf("a refused up left the user's state directory (%v)", err)
	}
	if p := processesOf(t, "65534"); p != "" {
		t.Errorf("processes of the user left:\n%s", p)
	}
	sameMachine(t, before)
}
