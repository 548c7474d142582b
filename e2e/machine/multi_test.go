package machine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// Multi-machine labs, with sandboxes standing in for machines: each is a
// network world of its own, joined to the others by an underlay the test
// makes (a veth between two sandboxes, or a Linux bridge in a third for
// more), with the machines' addresses on it.

// machines makes one kept sandbox per name (prefixed), joined by an
// underlay, with addresses from addr(i), and removes them at cleanup.
type machines struct {
	t     *testing.T
	names []string // sandbox names
	pids  []string // their keepers
}

func keeperPID(t *testing.T, sandbox string) string {
	t.Helper()
	var list []struct {
		Name string `json:"name"`
		PID  int    `json:"keeper_pid"`
	}
	if err := json.Unmarshal([]byte(must(t, "sandbox ls", netlab(t, "sandbox", "ls", "--json"))), &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == sandbox {
			return strconv.Itoa(s.PID)
		}
	}
	t.Fatalf("no sandbox %s", sandbox)
	return ""
}

// newMachines makes the sandboxes. addrs are the machines' underlay
// addresses with their prefix length, such as 192.0.2.1/24. Two machines
// get a veth between them; more get one each to a Linux bridge in a
// sandbox of its own.
func newMachines(t *testing.T, p string, addrs ...string) *machines {
	t.Helper()
	m := &machines{t: t}
	t.Cleanup(func() {
		for _, n := range append(m.names, p+"ul") {
			netlab(t, "sandbox", "rm", n)
		}
	})
	for i := range addrs {
		name := p + string(rune('a'+i))
		must(t, "sandbox create", netlab(t, "sandbox", "create", name))
		m.names = append(m.names, name)
		m.pids = append(m.pids, keeperPID(t, name))
	}
	if len(addrs) == 2 {
		must(t, "underlay", run(t, "", nil, "ip", "link", "add", "ul", "netns", m.pids[0], "type", "veth", "peer", "name", "ul", "netns", m.pids[1]))
	} else {
		must(t, "underlay switch", netlab(t, "sandbox", "create", p+"ul"))
		sw := keeperPID(t, p+"ul")
		must(t, "bridge", netlab(t, "sandbox", "exec", p+"ul", "--", "sh", "-c", "ip link add sw type bridge && ip link set sw up"))
		for i := range addrs {
			port := fmt.Sprintf("sw%d", i)
			must(t, "underlay port", run(t, "", nil, "ip", "link", "add", "ul", "netns", m.pids[i], "type", "veth", "peer", "name", port, "netns", sw))
			must(t, "underlay port up", netlab(t, "sandbox", "exec", p+"ul", "--", "sh", "-c", "ip link set "+port+" master sw up"))
		}
	}
	for i, a := range addrs {
		must(t, "underlay address", netlab(t, "sandbox", "exec", m.names[i], "--", "sh", "-c",
			"ip addr add "+a+" dev ul nodad 2>/dev/null || ip addr add "+a+" dev ul; ip link set ul up"))
	}
	return m
}

// in runs netlab in machine i's sandbox.
func (m *machines) in(i int, args ...string) result {
	m.t.Helper()
	return netlab(m.t, append([]string{"--sandbox", m.names[i]}, args...)...)
}

func (m *machines) must(i int, args ...string) string {
	m.t.Helper()
	return must(m.t, fmt.Sprintf("netlab %s on machine %d", strings.Join(args, " "), i), m.in(i, args...))
}

// host is what a machine's sandbox has (its fingerprint, taken inside).
func (m *machines) host(i int) string {
	m.t.Helper()
	out := must(m.t, "sandbox fingerprint", netlab(m.t, "sandbox", "exec", m.names[i], "--", "sh", "-c",
		"ip netns list; ip -br link | sort; ip -br addr | sort; ip route; nft list ruleset; ls /run/netlab/labs 2>/dev/null; true"))
	return regexp.MustCompile(`(?m)^(\S+@)\S+`).ReplaceAllString(out, "$1")
}

const splitLab = `name: split
machines:
  a: {address: %[1]s}
  b: {address: %[2]s}
host:
  sysctls: {net.ipv4.ip_forward: 1}
bridges:
  ovsbr0: {fail-mode: secure, openflow: learning-switch, addresses: [10.0.0.254/24, "fd00:10::fe/64"]}
namespaces:
  blue:
    interfaces:
      veth1: {peer: ovsbr0/veth0, addresses: [10.0.0.1/24, "fd00:10::1/64"]%[3]s}
    routes: [{to: default, via: 10.0.0.254}]
  red:
    machine: b
    interfaces:
      veth3: {peer: ovsbr0/veth2, addresses: [10.0.0.2/24, "fd00:10::2/64"]}
    routes: [{to: default, via: 10.0.0.254}]
expect:
  - {from: blue, to: red, ping: true}
  - {from: blue, to: "fd00:10::2", ping: true}
  - {from: red, to: blue, ping: true}
  - {from: red, to: 10.0.0.254, ping: true}
`

func splitFile(t *testing.T, a, b, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "split.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(splitLab, a, b, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tcpAcross runs iperf3 from client (on machine ci) to addr (server on si).
func tcpAcross(t *testing.T, m *machines, si int, server string, ci int, client, addr string) float64 {
	t.Helper()
	m.must(si, "exec", "split", server, "--", "iperf3", "-s", "-1", "-D")
	var r result
	for try := 0; try < 20; try++ {
		if r = m.in(ci, "exec", "split", client, "--", "iperf3", "-c", addr, "-t", "1", "-J", "--connect-timeout", "2000"); r.code == 0 {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("iperf3 %s -> %s across machines: exit %d\n%s", client, addr, r.code, r.out)
	}
	bps := received(t, r.out)
	// A working tunnel carries hundreds of Mbit/s here; one that loses
	// whole segments (oversized frames dropped) crawls at a few hundred
	// kbit/s on retransmits. The floor tells them apart with room to spare.
	if bps < 10e6 {
		t.Fatalf("iperf3 %s -> %s: %.2f Mbit/s, want at least 10:\n%s", client, addr, bps/1e6, r.out)
	}
	t.Logf("TCP %s -> %s across the tunnel: %.0f Mbit/s", client, addr, bps/1e6)
	return bps
}

// TestSplitLab: blue-red split over two machines (the learning switch and
// blue on a, red on b), over an IPv4 and an IPv6 underlay.
func TestSplitLab(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		name, a, b, la, lb string
		inner              int
	}{
		{"IPv4 underlay", "192.0.2.1/24", "192.0.2.2/24", "192.0.2.1", "192.0.2.2", 1450},
		{"IPv6 underlay", "fd00:77::1/64", "fd00:77::2/64", `"fd00:77::1"`, `"fd00:77::2"`, 1430},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := testkit.Fingerprint()
			m := newMachines(t, prefix(), c.a, c.b)
			emptyA := m.host(0)
			file := splitFile(t, c.la, c.lb, "")
			// a is found by its address; b is named.
			if out := m.must(0, "up", file); !strings.Contains(out, "machine a's part (its address") {
				t.Errorf("up does not say which machine it found:\n%s", out)
			}
			if out := m.must(1, "up", "--machine", "b", file); !strings.Contains(out, "machine b's part (as given") {
				t.Errorf("up --machine b:\n%s", out)
			}
			for i := range 2 {
				if out := m.must(i, "up", file); !strings.Contains(out, "up to date") {
					t.Errorf("second up on machine %d:\n%s", i, out)
				}
				if out := m.must(i, "check", "split"); !strings.Contains(out, " 0 failed") {
					t.Errorf("check on machine %d:\n%s", i, out)
				}
			}
			tcpAcross(t, m, 1, "red", 0, "blue", "10.0.0.2")
			tcpAcross(t, m, 0, "blue", 1, "red", "10.0.0.1")
			tcpAcross(t, m, 1, "red", 0, "blue", "fd00:10::2")
			tcpAcross(t, m, 0, "blue", 1, "red", "fd00:10::1")
			if flows := m.must(0, "flows", "split"); !strings.Contains(flows, "veth2 -> red/veth3") {
				t.Errorf("the learning switch did not learn red's MAC on the tunnel port:\n%s", flows)
			}
			st := m.must(0, "status", "split")
			for _, want := range []string{"machine a's part", "tunnel veth2 (bridge ovsbr0)", "to red/veth3 on machine b", fmt.Sprintf("mtu %d, ", c.inner), "remote namespace red on machine b", "drift: none"} {
				if !strings.Contains(st, want) {
					t.Errorf("status on machine a lacks %q:\n%s", want, st)
				}
			}
			if regexp.MustCompile(`mtu \d+, 0 packets in`).MatchString(st) {
				t.Errorf("the tunnel carries nothing:\n%s", st)
			}
			// The computed MTU carries a full frame with DF set; one byte more
			// does not fit.
			payload := c.inner - 28
			m.must(1, "exec", "split", "red", "--", "ping", "-c1", "-W2", "-M", "do", "-s", strconv.Itoa(payload), "10.0.0.1")
			if r := m.in(1, "exec", "split", "red", "--", "ping", "-c1", "-W1", "-M", "do", "-s", strconv.Itoa(payload+1), "10.0.0.1"); r.code == 0 {
				t.Errorf("a ping of %d bytes with DF set crossed a tunnel of inner MTU %d", payload+1+28, c.inner)
			}
			// An MTU of 1500 forced by the file cannot cross an underlay of
			// 1500: refused at its line, nothing changed.
			forced := splitFile(t, c.la, c.lb, ", mtu: 1500")
			if r := m.in(0, "up", forced); r.code != 2 || !strings.Contains(r.out, "split.yaml:12:") || !strings.Contains(r.out, fmt.Sprintf("at most %d", c.inner)) {
				t.Errorf("mtu 1500 over a 1500 underlay: exit %d\n%s", r.code, r.out)
			}
			// One machine's down leaves the other's part as it is.
			bBefore := m.host(1)
			m.must(0, "down", "--machine", "a", "split")
			if got := m.host(1); got != bBefore {
				t.Errorf("down on machine a changed machine b:\n%s", testkit.Diff(bBefore, got))
			}
			if st := m.must(1, "status", "split"); !strings.Contains(st, "drift: none") {
				t.Errorf("machine b's part after a's down:\n%s", st)
			}
			if got := m.host(0); got != emptyA {
				t.Errorf("machine a after down:\n%s", testkit.Diff(emptyA, got))
			}
			// A crash on a after step K (the tunnel is made at step 11), then
			// down: a is as it was; and up after a crash converges.
			for _, k := range []int{3, 10, 11, 12, 18} {
				r := run(t, "", []string{fmt.Sprintf("NETLAB_CRASH_AFTER=%d", k)}, netlabBin, "--sandbox", m.names[0], "up", "-q", file)
				if r.code != 99 {
					t.Fatalf("up with NETLAB_CRASH_AFTER=%d: exit %d\n%s", k, r.code, r.out)
				}
				if k == 11 {
					m.must(0, "up", "-q", file)
					if out := m.must(0, "check", "split"); !strings.Contains(out, " 0 failed") {
						t.Errorf("up after a crash at step %d: check:\n%s", k, out)
					}
				}
				m.must(0, "down", "split")
				if got := m.host(0); got != emptyA {
					t.Errorf("machine a after a crash at step %d and down:\n%s", k, testkit.Diff(emptyA, got))
				}
			}
			// Refusals that name the machine.
			if r := m.in(0, "up", "--machine", "c", file); r.code != 1 || !strings.Contains(r.out, "no machine c") {
				t.Errorf("up --machine c: exit %d\n%s", r.code, r.out)
			}
			if r := m.in(0, "up", "--machine", "b", file); r.code != 1 || !strings.Contains(r.out, "machine b: its address") {
				t.Errorf("up --machine b on machine a: exit %d\n%s", r.code, r.out)
			}
			if r := m.in(1, "down", "--machine", "a", "split"); r.code != 1 || !strings.Contains(r.out, "machine b's part") {
				t.Errorf("down --machine a on machine b: exit %d\n%s", r.code, r.out)
			}
			m.must(1, "down", "split")
			for _, n := range m.names {
				netlab(t, "sandbox", "rm", n)
			}
			sameMachine(t, before)
		})
	}
}

// TestMeshOfThree: a bridge stretched over three machines (a bridge on
// each, joined by a full mesh of tunnels), a namespace behind each: every
// namespace reaches every other.
func TestMeshOfThree(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	m := newMachines(t, prefix(), "fd00:78::1/64", "fd00:78::2/64", "fd00:78::3/64")
	file := filepath.Join(t.TempDir(), "mesh.yaml")
	lab := `name: mesh
machines:
  a: {address: "fd00:78::1"}
  b: {address: "fd00:78::2"}
  c: {address: "fd00:78::3"}
bridges:
  br: {type: %s, machines: [a, b, c]}
namespaces:
  na: {machine: a, interfaces: {eth0: {peer: br/pa, addresses: [10.5.0.1/24]}}}
  nb: {machine: b, interfaces: {eth0: {peer: br/pb, addresses: [10.5.0.2/24]}}}
  nc: {machine: c, interfaces: {eth0: {peer: br/pc, addresses: [10.5.0.3/24]}}}
`
	for _, br := range []string{"linux", "ovs"} {
		if err := os.WriteFile(file, []byte(fmt.Sprintf(lab, br)), 0o644); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			m.must(i, "up", "-q", file)
		}
		for i, ns := range []string{"na", "nb", "nc"} {
			for j := 1; j <= 3; j++ {
				if j != i+1 {
					m.must(i, "exec", "mesh", ns, "--", "ping", "-c1", "-W2", fmt.Sprintf("10.5.0.%d", j))
				}
			}
		}
		if st := m.must(1, "status", "mesh"); !strings.Contains(st, "fd00:78::1,fd00:78::3") {
			t.Errorf("%s: machine b's mesh tunnel does not reach a and c:\n%s", br, st)
		}
		for i := range 3 {
			m.must(i, "down", "-q", "mesh")
		}
	}
	for _, n := range m.names {
		netlab(t, "sandbox", "rm", n)
	}
	netlab(t, "sandbox", "rm", m.names[0][:len(m.names[0])-1]+"ul")
	sameMachine(t, before)
}
