package e2e

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
)

// cableLab has one cable of each kind netlab pulls on one machine: a
// namespace on a Linux bridge, one on an Open vSwitch bridge, and a veth
// pair between two namespaces (every end addressed in both families, so
// the IPv6 addresses the kernel flushes from a link set down must come
// back).
const cableLab = `name: cables
bridges:
  lbr: {type: linux, addresses: [10.91.0.254/24, fd00:91::fe/64]}
  obr: {type: ovs, addresses: [10.92.0.254/24, fd00:92::fe/64]}
namespaces:
  l:
    interfaces:
      eth0: {peer: lbr/lp, addresses: [10.91.0.1/24, fd00:91::1/64]}
    routes: [{to: 10.93.0.0/24, via: 10.91.0.254}]
  o:
    interfaces:
      eth0: {peer: obr/op, addresses: [10.92.0.1/24, fd00:92::1/64]}
  x:
    interfaces:
      p2p: {peer: y/p2p, addresses: [10.94.0.1/30, fd00:94::1/64]}
  y:
    interfaces:
      p2p: {addresses: [10.94.0.2/30, fd00:94::2/64]}
    routes: [{to: 10.95.0.0/24, via: 10.94.0.1}, {to: "fd00:95::/64", via: "fd00:94::1"}]
`

// linkFlags is what `ip -o link show` says of an interface: its flags
// (UP, LOWER_UP, NO-CARRIER, ...) and its operational state.
func linkFlags(t *testing.T, ns, dev string) (flags map[string]bool, operstate string) {
	t.Helper()
	args := []string{"-o", "link", "show", "dev", dev}
	if ns != "host" {
		args = append([]string{"-n", ns}, args...)
	}
	out := sh(t, "ip", args...)
	open, end := strings.Index(out, "<"), strings.Index(out, ">")
	if open < 0 || end < open {
		t.Fatalf("ip link show %s/%s: %q", ns, dev, out)
	}
	flags = map[string]bool{}
	for _, f := range strings.Split(out[open+1:end], ",") {
		flags[f] = true
	}
	fields := strings.Fields(out[end:])
	for i, f := range fields {
		if f == "state" && i+1 < len(fields) {
			operstate = fields[i+1]
		}
	}
	return flags, operstate
}

// carrierOf describes an interface as a test log line: "UP NO-CARRIER
// state DOWN".
func carrierOf(t *testing.T, ns, dev string) string {
	t.Helper()
	f, op := linkFlags(t, ns, dev)
	var s []string
	for _, k := range []string{"UP", "LOWER_UP", "NO-CARRIER"} {
		if f[k] {
			s = append(s, k)
		}
	}
	return strings.Join(s, " ") + " state " + op
}

// TestLinkCarrier: netlab link pulls the cable of an interface of each
// kind — the namespace end of a Linux bridge port, of an Open vSwitch port,
// a bridge port from the host side, one end of a veth pair between
// namespaces — and the interface named is up with NO-CARRIER while its
// peer is down; traffic through it stops; status shows it as intent, not
// drift; up keeps it; a second link ... down changes nothing; link ... up
// (or --reset) brings the peer back with its IPv6 addresses and routes and
// traffic flows again; down leaves the host as it was.
func TestLinkCarrier(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) })
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "cables.yaml", cableLab)
	labUp(t, file, p, "cables")
	lab := p + "cables"
	for _, c := range []struct {
		name          string
		named         [2]string // the interface whose cable is pulled (ns, dev), as on the machine
		held          [2]string // its peer, set down
		from, to, to6 string    // traffic that must stop, and come back
	}{
		{"linux bridge port, namespace end", [2]string{p + "l", "eth0"}, [2]string{"host", p + "lp"}, p + "l", "10.91.0.254", "fd00:91::fe"},
		{"linux bridge port, host end", [2]string{"host", p + "lp"}, [2]string{p + "l", "eth0"}, p + "l", "10.91.0.254", "fd00:91::fe"},
		{"ovs port, namespace end", [2]string{p + "o", "eth0"}, [2]string{"host", p + "op"}, p + "o", "10.92.0.254", "fd00:92::fe"},
		{"ovs port, host end", [2]string{"host", p + "op"}, [2]string{p + "o", "eth0"}, p + "o", "10.92.0.254", "fd00:92::fe"},
		{"veth pair between namespaces", [2]string{p + "x", "p2p"}, [2]string{p + "y", "p2p"}, p + "x", "10.94.0.2", "fd00:94::2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ping(t, c.from, c.to)
			ping(t, c.from, c.to6)
			arg := c.named[0] + "/" + c.named[1]
			out := mustNetlab(t, "link", lab, arg, "down")
			if !strings.Contains(out, "link set "+c.held[1]+" down") || !strings.Contains(out, "is pulled") {
				t.Errorf("netlab link %s down:\n%s", arg, out)
			}
			named, held := carrierOf(t, c.named[0], c.named[1]), carrierOf(t, c.held[0], c.held[1])
			t.Logf("cable of %s pulled: %s shows %q, its peer %s/%s %q", arg, arg, named, c.held[0], c.held[1], held)
			if f, _ := linkFlags(t, c.named[0], c.named[1]); !f["UP"] || !f["NO-CARRIER"] || f["LOWER_UP"] {
				t.Errorf("%s: %q, want UP and NO-CARRIER", arg, named)
			}
			if f, op := linkFlags(t, c.held[0], c.held[1]); f["UP"] || op != "DOWN" {
				t.Errorf("peer %s/%s: %q, want administratively down", c.held[0], c.held[1], held)
			}
			noPing(t, c.from, c.to)
			noPing(t, c.from, c.to6)
			st := mustNetlab(t, "status", lab)
			for _, want := range []string{"link " + arg + ": cable pulled (netlab link; held down by " + c.held[0] + "/" + c.held[1] + ")", "NO-CARRIER  cable pulled (netlab link)", "drift: none"} {
				if !strings.Contains(st, want) {
					t.Errorf("status lacks %q:\n%s", want, st)
				}
			}
			if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
				t.Errorf("up after netlab link down changed something:\n%s", out)
			}
			if out := mustNetlab(t, "link", lab, arg, "down"); !strings.Contains(out, "up to date") {
				t.Errorf("second netlab link down:\n%s", out)
			}
			back := []string{"link", lab, arg, "up"}
			if c.named[0] == "host" {
				back = []string{"link", lab, arg, "--reset"}
			}
			out = mustNetlab(t, back...)
			if !strings.Contains(out, "link set "+c.held[1]+" up") {
				t.Errorf("netlab %s:\n%s", strings.Join(back, " "), out)
			}
			if f, _ := linkFlags(t, c.named[0], c.named[1]); !f["LOWER_UP"] || f["NO-CARRIER"] {
				t.Errorf("after plugging back, %s: %q", arg, carrierOf(t, c.named[0], c.named[1]))
			}
			ping(t, c.from, c.to)
			ping(t, c.from, c.to6)
			if st := mustNetlab(t, "status", lab); !strings.Contains(st, "drift: none") || strings.Contains(st, "cable pulled") {
				t.Errorf("status after plugging back:\n%s", st)
			}
		})
	}
	// The routes of the held end came back: y's, through its p2p.
	if r := sh(t, "ip", "-n", p+"y", "route", "show", "10.95.0.0/24"); !strings.Contains(r, "via 10.94.0.1") {
		t.Errorf("y's route through the held end did not come back: %q", r)
	}
	if r := sh(t, "ip", "-n", p+"y", "-6", "route", "show", "fd00:95::/64"); !strings.Contains(r, "via fd00:94::1") {
		t.Errorf("y's IPv6 route through the held end did not come back: %q", r)
	}
	// What has no cable.
	if r := netlab(t, "link", lab, "host/"+p+"lbr", "down"); r.code != 1 || !strings.Contains(r.out, "no cable to pull") {
		t.Errorf("a bridge's own interface: exit %d\n%s", r.code, r.out)
	}
	if r := netlab(t, "link", lab, "nope/eth0", "down"); r.code != 1 || !strings.Contains(r.out, "no such interface") {
		t.Errorf("unknown interface: exit %d\n%s", r.code, r.out)
	}
	// Pulled and never plugged back: down removes everything all the same.
	mustNetlab(t, "link", lab, "l/eth0", "down") // the file's names work too
	mustNetlab(t, "down", lab)
}

// TestLinkFixture: lab.LinkDown pulls a cable for one test (the other end
// sees no carrier) and the cable is back when it ends.
func TestLinkFixture(t *testing.T) {
	requireRoot(t)
	lab := netlabtest.Up(t, writeFile(t, t.TempDir(), "cables.yaml", cableLab))
	t.Run("pulled", func(t *testing.T) {
		lab.LinkDown(t, "x", "p2p")
		if lab.Carrier(t, "x", "p2p") || lab.Carrier(t, "y", "p2p") {
			t.Errorf("after LinkDown: x/p2p or y/p2p has a carrier")
		}
		if out, err := lab.Run("x", "ping", "-c", "1", "-W", "1", "10.94.0.2"); err == nil {
			t.Errorf("ping through a pulled cable:\n%s", out)
		}
		lab.LinkUp(t, "x", "p2p")
		lab.Ping(t, "x", "10.94.0.2")
		lab.LinkDown(t, "o", "eth0") // left pulled: the cleanup plugs it back
	})
	if !lab.Carrier(t, "o", "eth0") || !lab.Carrier(t, "host", "op") {
		t.Errorf("the subtest's cable is still pulled after it ended")
	}
	lab.Ping(t, "o", "10.92.0.254")
}

// switchedEventsLab: four namespaces on one Open vSwitch bridge (a learning
// switch), dual-stack.
const switchedEventsLab = `name: sw
bridges:
  sw: {type: ovs}
namespaces:
  a1: {interfaces: {eth0: {peer: sw/pa1, addresses: [10.81.0.1/24, fd00:81::1/64]}}}
  a2: {interfaces: {eth0: {peer: sw/pa2, addresses: [10.81.0.2/24, fd00:81::2/64]}}}
  b1: {interfaces: {eth0: {peer: sw/pb1, addresses: [10.81.0.3/24, fd00:81::3/64]}}}
  n:  {interfaces: {eth0: {peer: sw/pn, addresses: [10.81.0.4/24, fd00:81::4/64]}}}
`

// routedEventsLab: a, b and n each on a subnet of their own behind the router r,
// which is in no group.
const routedEventsLab = `name: rt
namespaces:
  r:
    interfaces:
      ra: {peer: a1/eth0, addresses: [10.82.1.254/24, fd00:82:1::fe/64]}
      rb: {peer: b1/eth0, addresses: [10.82.2.254/24, fd00:82:2::fe/64]}
      rn: {peer: n/eth0, addresses: [10.82.3.254/24, fd00:82:3::fe/64]}
    sysctls: {net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1}
  a1:
    interfaces: {eth0: {addresses: [10.82.1.1/24, fd00:82:1::1/64]}}
    routes: [{to: default, via: 10.82.1.254}, {to: default, via: "fd00:82:1::fe"}]
  b1:
    interfaces: {eth0: {addresses: [10.82.2.1/24, fd00:82:2::1/64]}}
    routes: [{to: default, via: 10.82.2.254}, {to: default, via: "fd00:82:2::fe"}]
  n:
    interfaces: {eth0: {addresses: [10.82.3.1/24, fd00:82:3::1/64]}}
    routes: [{to: default, via: 10.82.3.254}, {to: default, via: "fd00:82:3::fe"}]
`

// echoes runs a TCP and a UDP echo server on port 7 of every address of a
// namespace (both families), and records the sources of the datagrams its
// UDP server received, answered or not.
type echoes struct {
	mu   sync.Mutex
	seen map[string]int // UDP source address -> datagrams
}

func startEchoes(t *testing.T, lab *netlabtest.Lab, ns string) *echoes {
	t.Helper()
	e := &echoes{seen: map[string]int{}}
	ln, err := lab.Listen(ns, "tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := lab.ListenPacket(ns, "udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			e.mu.Lock()
			e.seen[strings.TrimPrefix(host, "::ffff:")]++
			e.mu.Unlock()
			pc.WriteTo(buf[:n], from)
		}
	}()
	return e
}

// got says how many datagrams the UDP echo server received from addr.
func (e *echoes) got(addr string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[addr]
}

// reaches says whether namespace from gets an answer from addr over proto
// (icmp, tcp or udp), within a second (a few tries when an answer is
// expected, so a lost first packet on a fresh path is no failure).
func reaches(lab *netlabtest.Lab, from, addr, proto string, expect bool) bool {
	tries := 1
	if expect {
		tries = 3
	}
	for range tries {
		if reachOnce(lab, from, addr, proto) {
			return true
		}
	}
	return false
}

func reachOnce(lab *netlabtest.Lab, from, addr, proto string) bool {
	switch proto {
	case "icmp":
		_, err := lab.Run(from, "ping", "-c", "1", "-W", "1", addr)
		return err == nil
	case "tcp":
		c, err := lab.Dial(from, "tcp", net.JoinHostPort(addr, "7"), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("hi\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line == "hi\n"
	case "udp":
		c, err := lab.Dial(from, "udp", net.JoinHostPort(addr, "7"), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("hi")); err != nil {
			return false
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == "hi"
	}
	panic("proto " + proto)
}

// flow is one probe of a matrix: from a namespace to another's address.
type flow struct {
	from, to, addr, proto string
	want                  bool
}

// checkFlows probes every flow at once (a probe that must fail waits its
// full second) and reports each that does not do what it should.
func checkFlows(t *testing.T, lab *netlabtest.Lab, what string, flows []flow) {
	t.Helper()
	got := make([]bool, len(flows))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, f := range flows {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got[i] = reaches(lab, f.from, f.addr, f.proto, f.want)
		}()
	}
	wg.Wait()
	bad := 0
	for i, f := range flows {
		if got[i] != f.want {
			bad++
			t.Errorf("%s: %s %s -> %s (%s): reached %v, want %v", what, f.proto, f.from, f.to, f.addr, got[i], f.want)
		}
	}
	t.Logf("%s: %d probes, %d as they should be", what, len(flows), len(flows)-bad)
}

// matrix is every flow between the namespaces named, over ICMP, TCP and
// UDP in both families, each wanted or not by cut.
func matrix(addrs map[string][2]string, names []string, cut func(from, to string) bool) []flow {
	var out []flow
	for _, from := range names {
		for _, to := range names {
			if from == to {
				continue
			}
			for _, addr := range addrs[to] {
				for _, proto := range []string{"icmp", "tcp", "udp"} {
					out = append(out, flow{from: from, to: to, addr: addr, proto: proto, want: !cut(from, to)})
				}
			}
		}
	}
	return out
}

// icmpEchosIn reads how many ICMP echo requests of a family a namespace
// has received (delivered past its input hook): /proc/net/snmp's
// Icmp InEchos, /proc/net/snmp6's Icmp6InEchos.
func icmpEchosIn(t *testing.T, lab *netlabtest.Lab, ns string, v6 bool) int {
	t.Helper()
	if v6 {
		for _, line := range strings.Split(lab.Exec(t, ns, "cat", "/proc/net/snmp6"), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Icmp6InEchos" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		t.Fatalf("no Icmp6InEchos in %s", ns)
	}
	var head []string
	for _, line := range strings.Split(lab.Exec(t, ns, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, h := range head {
			if h == "InEchos" && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatalf("no Icmp InEchos in %s", ns)
	return 0
}

// TestPartitionTraffic: on a switched lab and on a routed one, a partition
// drops ICMP, TCP and UDP between the groups in both families, both ways,
// and nothing else (inside a group, to and from a namespace in neither,
// through a router in neither); one way, only the first group's packets
// to the second (the second's still arrive: UDP datagrams are received,
// echo requests counted, SYNs leave connections half open); heal gives
// everything back, and a TCP connection the partition stalled goes on,
// never reset. Status shows each partition as intent, up keeps it.
func TestPartitionTraffic(t *testing.T) {
	requireRoot(t)
	for _, c := range []struct {
		name, text string
		addrs      map[string][2]string
		names      []string
	}{
		{"switched", switchedEventsLab, map[string][2]string{
			"a1": {"10.81.0.1", "fd00:81::1"}, "a2": {"10.81.0.2", "fd00:81::2"}, "b1": {"10.81.0.3", "fd00:81::3"}, "n": {"10.81.0.4", "fd00:81::4"}},
			[]string{"a1", "a2", "b1", "n"}},
		{"routed", routedEventsLab, map[string][2]string{
			"a1": {"10.82.1.1", "fd00:82:1::1"}, "b1": {"10.82.2.1", "fd00:82:2::1"}, "n": {"10.82.3.1", "fd00:82:3::1"}},
			[]string{"a1", "b1", "n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			lab := netlabtest.Up(t, writeFile(t, t.TempDir(), c.name+".yaml", c.text))
			echo := map[string]*echoes{}
			for _, ns := range c.names {
				echo[ns] = startEchoes(t, lab, ns)
			}
			groupA := func(ns string) bool { return strings.HasPrefix(ns, "a") }
			groupB := func(ns string) bool { return strings.HasPrefix(ns, "b") }
			checkFlows(t, lab, "before", matrix(c.addrs, c.names, func(string, string) bool { return false }))

			// A connection open before the partition outlives it.
			conn, err := lab.Dial("a1", "tcp", net.JoinHostPort(c.addrs["b1"][0], "7"), 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			var as []string
			for _, ns := range c.names {
				if groupA(ns) {
					as = append(as, ns)
				}
			}
			heal := lab.Partition(t, as, []string{"b1"})
			checkFlows(t, lab, "both ways", matrix(c.addrs, c.names, func(from, to string) bool {
				return groupA(from) && groupB(to) || groupB(from) && groupA(to)
			}))
			st, err := lab.Status()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Partitions) != 1 || len(st.Drift) != 0 || st.Partitions[0].Dropped == 0 {
				t.Errorf("status: partitions %+v, drift %q", st.Partitions, st.Drift)
			}
			if _, err := conn.Write([]byte("through the partition\n")); err != nil {
				t.Fatalf("write during the partition: %v", err)
			}
			time.Sleep(1500 * time.Millisecond) // retransmissions dropped meanwhile
			heal()
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "through the partition\n" {
				t.Errorf("the connection across the healed partition: %q, %v (want the echo: never reset)", line, err)
			}
			checkFlows(t, lab, "healed", matrix(c.addrs, c.names, func(string, string) bool { return false }))

			// One way: a1's packets to b1 are dropped, b1's to a1 arrive.
			heal = lab.Partition(t, []string{"a1"}, []string{"b1"}, netlabtest.OneWay(), netlabtest.PartitionName("oneway"))
			checkFlows(t, lab, "one way", matrix(c.addrs, c.names, func(from, to string) bool {
				// A request/answer needs both ways: either direction fails.
				return from == "a1" && to == "b1" || from == "b1" && to == "a1"
			}))
			for i, v6 := range []bool{false, true} {
				a1, b1 := c.addrs["a1"][i], c.addrs["b1"][i]
				// UDP: b1's datagrams reach a1's socket; a1's never reach b1's.
				fromB, fromA := echo["a1"].got(b1), echo["b1"].got(a1)
				reachOnce(lab, "b1", a1, "udp")
				reachOnce(lab, "a1", b1, "udp")
				if echo["a1"].got(b1) == fromB || echo["b1"].got(a1) != fromA {
					t.Errorf("one way, UDP (v6 %v): a1 received %d more from b1 (want more), b1 %d more from a1 (want none)",
						v6, echo["a1"].got(b1)-fromB, echo["b1"].got(a1)-fromA)
				}
				// ICMP: b1's echo requests are delivered to a1.
				n := icmpEchosIn(t, lab, "a1", v6)
				reachOnce(lab, "b1", a1, "icmp")
				if icmpEchosIn(t, lab, "a1", v6) == n {
					t.Errorf("one way, ICMP (v6 %v): b1's echo request did not reach a1", v6)
				}
				// TCP: b1's SYN reaches a1, whose answer is dropped: half
				// open, on a port of its own (earlier probes left theirs).
				port := strconv.Itoa(17 + i)
				ln, err := lab.Listen("a1", "tcp", ":"+port)
				if err != nil {
					t.Fatal(err)
				}
				if c, err := lab.Dial("b1", "tcp", net.JoinHostPort(a1, port), time.Second); err == nil {
					c.Close()
					t.Errorf("one way, TCP (v6 %v): b1 connected to a1", v6)
				}
				if ss := lab.Exec(t, "a1", "ss", "-Htn", "state", "syn-recv", "sport", "=", ":"+port); !strings.Contains(ss, b1) {
					t.Errorf("one way, TCP (v6 %v): no half-open connection from b1 in a1: %q", v6, ss)
				}
				ln.Close()
			}
			heal()
			checkFlows(t, lab, "one way healed", matrix(c.addrs, c.names, func(string, string) bool { return false }))
		})
	}
}

// TestPartitionCLI: netlab partition and heal from the command line, with
// several partitions at once, named and not; status; up keeps them; a
// second identical partition is up to date; heal of one keeps the other;
// down removes them (and the host is as before).
func TestPartitionCLI(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) })
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "sw.yaml", switchedEventsLab)
	labUp(t, file, p, "sw")
	lab := p + "sw"
	out := mustNetlab(t, "partition", lab, "a1,a2", "/", "b1")
	if !strings.Contains(out, "partition p1: "+p+"a1,"+p+"a2 / "+p+"b1 (both ways") {
		t.Errorf("netlab partition:\n%s", out)
	}
	if out := mustNetlab(t, "partition", lab, "a1,a2/b1"); !strings.Contains(out, "p1") || !strings.Contains(out, "up to date") {
		t.Errorf("the same partition again:\n%s", out)
	}
	mustNetlab(t, "partition", lab, "n", "/", "a1", "--oneway", "--name", "late")
	if r := netlab(t, "partition", lab, "n", "/", "b1", "--name", "late"); r.code != 1 || !strings.Contains(r.out, "heal it first") {
		t.Errorf("a name in use for other groups: exit %d\n%s", r.code, r.out)
	}
	if r := netlab(t, "partition", lab, "a1", "/", "nope"); r.code != 1 || !strings.Contains(r.out, "no such namespace") {
		t.Errorf("unknown namespace: exit %d\n%s", r.code, r.out)
	}
	st := mustNetlab(t, "status", lab)
	for _, want := range []string{"partition p1: " + p + "a1," + p + "a2 / " + p + "b1 (both ways", "partition late: " + p + "n -> " + p + "a1 (one way", "drift: none"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("up after netlab partition:\n%s", out)
	}
	noPing(t, p+"a2", "10.81.0.3")
	noPing(t, p+"n", "10.81.0.1")
	mustNetlab(t, "heal", lab, "p1")
	ping(t, p+"a2", "10.81.0.3")
	noPing(t, p+"n", "10.81.0.1")
	if out := mustNetlab(t, "heal", lab, "p1"); !strings.Contains(out, "not in force") {
		t.Errorf("second heal:\n%s", out)
	}
	if dry := mustNetlab(t, "down", "--dry-run", lab); strings.Contains(dry, "partition") {
		t.Errorf("down plans partition removals, which go with their namespaces:\n%s", dry)
	}
	mustNetlab(t, "down", lab)
}

// TestEventsCrash: netlab dies right after the first action of an event
// (as abrupt as kill -9) — a partition of three namespaces, a heal, a
// pulled cable. Up after each crash puts exactly the events' intended
// state in place (the rest of the partition, the healed tables gone, the
// cable pulled); down after a crash leaves the host exactly as it was.
func TestEventsCrash(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "sw.yaml", switchedEventsLab)
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	lab := p + "sw"
	t.Cleanup(func() { netlab(t, "down", lab) })
	crash := func(args ...string) {
		t.Helper()
		r := run(t, []string{"NETLAB_CRASH_AFTER=1"}, netlabBin, args...)
		if r.code != 99 {
			t.Fatalf("netlab %s with a crash after its first action: exit %d, want 99\n%s", strings.Join(args, " "), r.code, r.out)
		}
	}
	tables := func(ns string) string {
		return sh(t, "ip", "netns", "exec", ns, "nft", "list", "tables")
	}
	table := "netlab_" + strings.ReplaceAll(lab, "-", "_")

	crash("partition", lab, "a1,a2", "/", "b1")
	made := map[string]bool{}
	for _, ns := range []string{"a1", "a2", "b1"} {
		made[ns] = strings.Contains(tables(p+ns), "ip "+table)
	}
	// The three namespaces' tables are made at once: the crash comes after
	// the first is done, the others may be done or not.
	t.Logf("the crashed partition made the tables of %v", made)
	if !made["a1"] && !made["a2"] && !made["b1"] {
		t.Errorf("the crashed partition made no tables")
	}
	// As if the crash had come before a2's tables: up makes them, and
	// those of any other namespace the crash came before, and no others.
	sh(t, "ip", "netns", "exec", p+"a2", "sh", "-c", "nft delete table ip "+table+" 2>/dev/null; nft delete table ip6 "+table+" 2>/dev/null; true")
	made["a2"] = false
	out := mustNetlab(t, "up", "--prefix", p, file)
	for ns, had := range made {
		if wrote := strings.Contains(out, "ip netns exec "+p+ns+" nft -f -"); wrote == had {
			t.Errorf("up after the crash: %s's tables were there: %v, written by up: %v; want exactly the missing ones:\n%s", ns, had, wrote, out)
		}
	}
	if rules := sh(t, "ip", "netns", "exec", p+"a2", "nft", "list", "ruleset"); !strings.Contains(rules, "ip saddr 10.81.0.3 counter") ||
		!strings.Contains(rules, "ip6 saddr fd00:81::3 counter") || strings.Count(rules, "saddr") != 2 {
		t.Errorf("a2's rules after up, want b1's two addresses and nothing else:\n%s", rules)
	}
	for _, ns := range []string{"a1", "a2", "b1"} {
		if tb := tables(p + ns); !strings.Contains(tb, "ip "+table) || !strings.Contains(tb, "ip6 "+table) {
			t.Errorf("after up, %s has no partition tables:\n%s", ns, tb)
		}
	}
	if tb := tables(p + "n"); strings.Contains(tb, table) {
		t.Errorf("n, in neither group, has tables:\n%s", tb)
	}
	noPing(t, p+"a2", "10.81.0.3")
	ping(t, p+"a2", "10.81.0.4")

	crash("heal", lab)
	mustNetlab(t, "up", "--prefix", p, file)
	for _, ns := range []string{"a1", "a2", "b1"} {
		if tb := tables(p + ns); strings.Contains(tb, table) {
			t.Errorf("after a crashed heal and up, %s keeps tables:\n%s", ns, tb)
		}
	}
	ping(t, p+"a2", "10.81.0.3")

	crash("link", lab, "a1/eth0", "down")
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("up after a crashed link down:\n%s", out)
	}
	if f, _ := linkFlags(t, p+"a1", "eth0"); !f["NO-CARRIER"] {
		t.Errorf("after up, a1/eth0 has a carrier: %s", carrierOf(t, p+"a1", "eth0"))
	}

	// Crashed in the middle of a partition, then down: nothing left.
	crash("partition", lab, "a1", "/", "a2,b1,n", "--oneway")
	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
