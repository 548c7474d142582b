package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// listenIn opens a TCP listener inside a namespace; accepted connections'
// remote addresses arrive on the channel.
func listenIn(t *testing.T, ns, addr string) (net.Listener, <-chan string) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var ln net.Listener
	if err := namespace.Do(h, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen in %s on %s: %v", ns, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	peers := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Write([]byte("hi\n"))
			c.Close()
		}
	}()
	return ln, peers
}

// dialFrom connects from inside a namespace.
func dialFrom(ns, addr string) error {
	h, err := namespace.Open(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return namespace.Do(h, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		buf := make([]byte, 3)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(buf)
		c.Close()
		return err
	})
}

type statusJSON []struct {
	Lab        string `json:"lab"`
	Drift      []string
	Namespaces []struct {
		Name string `json:"name"`
		NAT  []struct {
			Source  string `json:"source"`
			Out     string `json:"out"`
			Packets uint64 `json:"packets"`
		} `json:"nat"`
	} `json:"namespaces"`
}

// TestNAT: blue reaches the lab's "internet" only through gw's masquerade,
// the server sees gw's address, internet cannot reach blue, counters count,
// re-applying rebuilds nothing, a changed prefix changes exactly that rule,
// and the host's own firewall (with a rule of ours in it) is untouched.
func TestNAT(t *testing.T) {
	requireRoot(t)
	p := newPrefix(t)
	// A rule of "the user's" in the host firewall, in a table of our own.
	probe := "netlab_e2e_" + strings.TrimSuffix(p, "-")
	sh(t, "nft", "add", "table", "inet", probe)
	t.Cleanup(func() { run(t, nil, "nft", "delete", "table", "inet", probe) })
	sh(t, "nft", "add", "chain", "inet", probe, "c")
	sh(t, "nft", "add", "rule", "inet", probe, "c", "ip", "saddr", "192.0.2.1", "counter", "accept")
	before := fingerprint(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "nat.yaml", readFile(t, "../labs/nat.yaml"))
	labUp(t, file, p, "nat")
	lab := p + "nat"
	blue, internet, gw := p+"blue", p+"internet", p+"gw"

	_, peers := listenIn(t, internet, "[::]:7777")
	if err := dialFrom(blue, "203.0.113.1:7777"); err != nil {
		t.Fatalf("blue -> internet over IPv4: %v", err)
	}
	if got := <-peers; got != "203.0.113.2" {
		t.Errorf("internet saw the IPv4 connection from %s, want gw's 203.0.113.2", got)
	}
	if err := dialFrom(blue, "[2001:db8:13::1]:7777"); err != nil {
		t.Fatalf("blue -> internet over IPv6: %v", err)
	}
	if got := <-peers; got != "2001:db8:13::2" {
		t.Errorf("internet saw the IPv6 connection from %s, want gw's 2001:db8:13::2", got)
	}
	listenIn(t, blue, "[::]:7778")
	if err := dialFrom(internet, "10.0.3.1:7778"); err == nil {
		t.Errorf("internet opened a connection to 10.0.3.1")
	}
	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "5 passed, 0 failed") {
		t.Errorf("check: %s", r)
	}

	var st statusJSON
	if err := json.Unmarshal([]byte(mustNetlab(t, "status", lab, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	counted := map[string]uint64{}
	for _, ns := range st[0].Namespaces {
		if ns.Name == gw {
			for _, r := range ns.NAT {
				counted[r.Source] = r.Packets
			}
		}
	}
	if counted["10.0.3.0/24"] == 0 || counted["fd00:13::/64"] == 0 {
		t.Errorf("NAT counters in status: %v", counted)
	}

	if got := mustNetlab(t, "plan", "--prefix", p, file); !strings.Contains(got, "up to date") {
		t.Errorf("plan after up rebuilds something:\n%s", got)
	}
	writeFile(t, dir, "nat.yaml", strings.Replace(readFile(t, file), "{source: 10.0.3.0/24, out: wan0}", "{source: 10.0.3.0/25, out: wan0}", 1))
	plan := mustNetlab(t, "plan", "--prefix", p, file)
	if strings.Count(plan, "\n") != 8 || !strings.Contains(plan, "ip saddr 10.0.3.0/25") || !strings.Contains(plan, "ip6 saddr fd00:13::/64") {
		t.Errorf("plan after changing one prefix is not exactly the NAT table:\n%s", plan)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	if err := dialFrom(blue, "203.0.113.1:7777"); err != nil {
		t.Errorf("blue (10.0.3.1, inside /25) -> internet after the change: %v", err)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
	if !strings.Contains(sh(t, "nft", "list", "table", "inet", probe), "ip saddr 192.0.2.1") {
		t.Errorf("our own host rule is gone")
	}
}

// TestExternalPort: a veth pair of the test's own in the host, one end with
// an address, the other attached as external: to a lab bridge; a lab
// namespace reaches the address; down gives the interface back exactly as it
// was (exists, address, state, no master). For both bridge types.
func TestExternalPort(t *testing.T) {
	requireRoot(t)
	for _, typ := range []string{"linux", "ovs"} {
		t.Run(typ, func(t *testing.T) {
			p := newPrefix(t)
			xa, xb := p+"xa", p+"xb"
			sh(t, "ip", "link", "add", xa, "type", "veth", "peer", "name", xb)
			t.Cleanup(func() { run(t, nil, "ip", "link", "del", xa) })
			sh(t, "ip", "addr", "add", "10.0.4.99/24", "dev", xb)
			sh(t, "ip", "link", "set", xb, "up")
			// xa is up without an address, as a spare NIC or a VM's tap would
			// be. (A down interface is brought up to attach it and set down
			// again on down; the kernel keeps what it made at the first up: a
			// qdisc and an IPv6 link-local address.)
			sh(t, "ip", "link", "set", xa, "up")
			// Let the kernel finish duplicate address detection of their
			// link-local addresses before the picture of "before" is taken.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if !strings.Contains(sh(t, "ip", "addr", "show", xa)+sh(t, "ip", "addr", "show", xb), "tentative") {
					break
				}
			}
			linkState := func() string {
				return sh(t, "ip", "-d", "link", "show", xa) + sh(t, "ip", "addr", "show", xa) + sh(t, "ip", "addr", "show", xb)
			}
			before := fingerprint(t)
			stateBefore := linkState()
			file := writeFile(t, t.TempDir(), "ext.yaml", `name: ext
bridges:
  exbr: {type: `+typ+`, external: [`+xa+`]}
namespaces:
  a:
    interfaces:
      eth0: {peer: exbr/ex-a, addresses: [10.0.4.1/24]}
`)
			labUp(t, file, p, "ext")
			ping(t, p+"a", "10.0.4.99")
			if typ == "linux" && !strings.Contains(sh(t, "ip", "link", "show", xa), "master "+p+"exbr") {
				t.Errorf("%s not attached to the bridge", xa)
			}
			if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
				t.Errorf("second up: %s", got)
			}
			out := mustNetlab(t, "down", p+"ext")
			if !strings.Contains(out, "external interface "+xa) {
				t.Errorf("down does not say it gave %s back:\n%s", xa, out)
			}
			if after := linkState(); after != stateBefore {
				t.Errorf("%s not given back as it was:\n%s", xa, diff(stateBefore, after))
			}
			sameHost(t, before)
		})
	}
}

// TestExternalRefusals: a missing interface, and one enslaved elsewhere,
// are refused with the place in the file, and nothing changes.
func TestExternalRefusals(t *testing.T) {
	requireRoot(t)
	p := newPrefix(t)
	sh(t, "ip", "link", "add", p+"br", "type", "bridge")
	t.Cleanup(func() { run(t, nil, "ip", "link", "del", p+"br") })
	sh(t, "ip", "link", "add", p+"ya", "type", "veth", "peer", "name", p+"yb")
	t.Cleanup(func() { run(t, nil, "ip", "link", "del", p+"ya") })
	sh(t, "ip", "link", "set", p+"ya", "master", p+"br")
	before := fingerprint(t)
	file := writeFile(t, t.TempDir(), "ext.yaml", `name: ext
bridges:
  exbr: {type: linux, external: [`+p+`nope, `+p+`ya]}
namespaces:
  a:
    interfaces:
      eth0: {peer: exbr/ex-a, addresses: [10.0.4.1/24]}
`)
	r := netlab(t, "up", "--prefix", p, file)
	if r.code != 2 || !strings.Contains(r.out, "ext.yaml:3:") ||
		!strings.Contains(r.out, "external interface "+p+"nope does not exist") ||
		!strings.Contains(r.out, "external interface "+p+"ya is already attached to "+p+"br") {
		t.Errorf("up: exit %d\n%s", r.code, r.out)
	}
	sameHost(t, before)
}

// TestForwardPolicyWarning: a host firewall whose forward chain drops by
// policy would drop a lab's forwarded traffic; plan says so, and which rule
// to add, and adds nothing itself. (The test's own chain exists for a moment
// and is removed; it only concerns forwarded traffic.)
func TestForwardPolicyWarning(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.1.0/24", "fd00:11::/64")
	table := "netlab_e2e_fw_" + strings.TrimSuffix(newPrefix(t), "-")
	sh(t, "nft", "add", "table", "inet", table)
	t.Cleanup(func() { run(t, nil, "nft", "delete", "table", "inet", table) })
	sh(t, "nft", "add chain inet "+table+" forward_drop { type filter hook forward priority 0 ; policy drop ; }")
	before := sh(t, "nft", "list", "ruleset")
	r := netlab(t, "plan", "--prefix", newPrefix(t), "../labs/blue-red-linux.yaml")
	if r.code != 0 || !strings.Contains(r.out, "warning:") || !strings.Contains(r.out, "policy drop") || !strings.Contains(r.out, "10.0.1.0/24") {
		t.Errorf("plan with a forward policy of drop: exit %d\n%s", r.code, r.out)
	}
	if after := sh(t, "nft", "list", "ruleset"); after != before {
		t.Errorf("plan changed the ruleset:\n%s", diff(before, after))
	}
}
