package machine

import (
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestSplitLabEvents: events over machines. The cable of red/veth3, whose
// link crosses from machine b to the switch on machine a, is pulled on both
// machines: each sets its own tunnel end down (b: red's interface itself,
// a VXLAN device without carrier; a: the switch's tunnel port), and blue
// and red no longer reach each other; plugged back on both, they do. A
// partition blue / red made on both machines cuts them apart while each
// still reaches the switch's address; healed on both, they meet again. Each
// machine's status shows the events and no drift; down on both leaves the
// machines as they were.
func TestSplitLabEvents(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	m := newMachines(t, prefix(), "192.0.2.1/24", "192.0.2.2/24")
	file := splitFile(t, "192.0.2.1", "192.0.2.2", "")
	m.must(0, "up", "-q", "--machine", "a", file)
	m.must(1, "up", "-q", "--machine", "b", file)
	reach := func(i int, ns, addr string) bool {
		for range 3 {
			if m.in(i, "exec", "split", ns, "--", "ping", "-c1", "-W1", addr).code == 0 {
				return true
			}
		}
		return false
	}
	linkState := func(i int, ns, dev string) string {
		args := []string{"ip", "-o", "link", "show", "dev", dev}
		if ns != "host" {
			args = []string{"ip", "-n", ns, "-o", "link", "show", "dev", dev}
		}
		out := must(t, "ip link", netlab(t, append([]string{"sandbox", "exec", m.names[i], "--"}, args...)...))
		return out[strings.Index(out, "<"):strings.Index(out, " mtu ")] + " state " + strings.Fields(out[strings.Index(out, " state "):])[1]
	}
	if !reach(0, "blue", "10.0.0.2") {
		t.Fatal("blue does not reach red across the machines")
	}
	t.Logf("tunnel ends up: machine a host/veth2 %q, machine b red/veth3 %q", linkState(0, "host", "veth2"), linkState(1, "red", "veth3"))

	// The cable of red/veth3, pulled on both machines.
	if out := m.must(0, "link", "split", "red/veth3", "down"); !strings.Contains(out, "ip link set veth2 down") {
		t.Errorf("machine a pulls the cable of red/veth3 at its tunnel port:\n%s", out)
	}
	if out := m.must(1, "link", "split", "red/veth3", "down"); !strings.Contains(out, "ip -n red link set veth3 down") || !strings.Contains(out, "a tunnel has no carrier") {
		t.Errorf("machine b pulls the cable of red/veth3 at red's tunnel itself:\n%s", out)
	}
	sa, sb := linkState(0, "host", "veth2"), linkState(1, "red", "veth3")
	t.Logf("cable of red/veth3 pulled on both: machine a host/veth2 %q, machine b red/veth3 %q", sa, sb)
	if !strings.HasSuffix(sa, "state DOWN") || !strings.HasSuffix(sb, "state DOWN") {
		t.Errorf("tunnel ends after the pull: a %q, b %q; want both down", sa, sb)
	}
	if reach(0, "blue", "10.0.0.2") || reach(1, "red", "10.0.0.1") {
		t.Errorf("blue and red still meet with the cable pulled on both machines")
	}
	for i, dev := range []string{"host/veth2", "red/veth3"} {
		st := m.must(i, "status", "split")
		if !strings.Contains(st, "link red/veth3: cable pulled (netlab link; held down by "+dev+")") || !strings.Contains(st, "drift: none") {
			t.Errorf("status on machine %d:\n%s", i, st)
		}
		if out := m.must(i, "up", file); !strings.Contains(out, "up to date") {
			t.Errorf("up on machine %d with the cable pulled:\n%s", i, out)
		}
	}
	m.must(0, "link", "split", "red/veth3", "up")
	m.must(1, "link", "split", "red/veth3", "up")
	if !reach(0, "blue", "10.0.0.2") || !reach(1, "red", "fd00:10::1") {
		t.Errorf("blue and red do not meet again with the cable plugged back")
	}

	// A partition blue / red, on both machines.
	for i := range 2 {
		m.must(i, "partition", "split", "blue", "/", "red")
	}
	if reach(0, "blue", "10.0.0.2") || reach(1, "red", "10.0.0.1") || reach(0, "blue", "fd00:10::2") {
		t.Errorf("blue and red meet across the partition")
	}
	if !reach(0, "blue", "10.0.0.254") || !reach(1, "red", "10.0.0.254") {
		t.Errorf("the switch's address, in no group, is cut off")
	}
	for i := range 2 {
		if st := m.must(i, "status", "split"); !strings.Contains(st, "partition p1: blue / red (both ways") || !strings.Contains(st, "drift: none") {
			t.Errorf("status on machine %d:\n%s", i, st)
		}
		m.must(i, "heal", "split")
	}
	if !reach(0, "blue", "10.0.0.2") || !reach(1, "red", "10.0.0.1") {
		t.Errorf("blue and red do not meet after the heal")
	}
	m.must(0, "partition", "split", "blue", "/", "red") // left in force: down removes it
	m.must(0, "down", "split")
	m.must(1, "down", "split")
	for _, n := range m.names {
		netlab(t, "sandbox", "rm", n)
	}
	sameMachine(t, before)
}
