package e2e

import (
	"encoding/binary"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// ovsTool runs an Open vSwitch tool against the lab's instance through
// `netlab ovs`, as a user of the tutorial would.
func ovsTool(t *testing.T, lab string, args ...string) string {
	t.Helper()
	return mustNetlab(t, append([]string{"ovs", lab, "--"}, args...)...)
}

// dpPorts maps the bridge's datapath port numbers to OpenFlow port numbers
// (`ovs-appctl dpif/show`: "p1 1/4: (...)"): the tutorial's sandbox gives a
// port one number for both, a real datapath does not.
func dpPorts(t *testing.T, lab, br string) map[string]string {
	t.Helper()
	out := ovsTool(t, lab, "ovs-appctl", "dpif/show")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		of, dp, ok := strings.Cut(strings.TrimSuffix(f[1], ":"), "/")
		if ok {
			m[dp] = of
		}
	}
	return m
}

// datapathActions traces a packet (`ovs-appctl ofproto/trace`) and returns
// its "Datapath actions:" with output ports as OpenFlow numbers, and the
// whole trace.
func datapathActions(t *testing.T, lab, br string, ports map[string]string, flow string, generate bool) (string, string) {
	t.Helper()
	args := []string{"ovs-appctl", "ofproto/trace", br, flow}
	if generate {
		args = append(args, "-generate")
	}
	out := ovsTool(t, lab, args...)
	m := regexp.MustCompile(`(?m)^Datapath actions: (.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("trace %s: no datapath actions:\n%s", flow, out)
	}
	var acts []string
	for _, a := range strings.Split(m[1], ",") {
		if of, ok := ports[a]; ok {
			a = of
		}
		acts = append(acts, a)
	}
	// push_vlan(vid=30,pcp=0) was split at its comma too, and is joined
	// again as it was (its parts are no port numbers).
	return strings.Join(acts, ","), out
}

// taggedARP is an ARP request from a host on a trunk: 802.1Q tag vid,
// source mac/ip, asking for target.
func taggedARP(vid uint16, mac net.HardwareAddr, ip, target net.IP) []byte {
	f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac...)
	if vid != 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vid)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1)
	f = append(f, mac...)
	f = append(f, ip.To4()...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, target.To4()...)
	return append(f, make([]byte, max(0, 64-len(f)))...)
}

// sendFrame writes a whole Ethernet frame to an interface of a namespace
// from a packet socket: a trunk host tagging its own frames (the kernel here
// has no 8021q for VLAN interfaces).
func sendFrame(t *testing.T, ns, dev string, frame []byte) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = namespace.Do(h, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
	})
	if err != nil {
		t.Fatalf("send a frame on %s/%s: %v", ns, dev, err)
	}
}

// TestOVSAdvancedTutorial is Open vSwitch's "Advanced Features" tutorial as
// the shipped lab labs/ovs-advanced.yaml, its flows exactly as the tutorial
// prints them: the file validates and comes up, a second up has nothing to
// do and status no drift (the flows compared by meaning: Open vSwitch
// stores vlan_tci=0 as vlan_tci=0x0000 and actions=1 as output:1), the
// tutorial's ofproto/trace examples give its datapath actions, netlab flows
// counts what its learn() made as learned, real 802.1Q frames from the trunk
// reach the access ports of their VLAN only (captured with their tags and
// read back by tcpdump), and an edited flow is replaced exactly, keeping
// what was learned.
func TestOVSAdvancedTutorial(t *testing.T) {
	requireRoot(t)
	requireTcpdump(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "ovs-advanced.yaml", readFile(t, "../labs/ovs-advanced.yaml"))
	mustNetlab(t, "validate", "--prefix", p, file)
	labUp(t, file, p, "ovs-advanced")
	lab, br := p+"ovs-advanced", p+"br0"
	t.Cleanup(func() { netlab(t, "down", lab) })

	if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
		t.Fatalf("second up of the tutorial's flows:\n%s", got)
	}
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "drift: none") || !strings.Contains(st, "run directory") {
		t.Fatalf("status:\n%s", st)
	}
	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "4 passed, 0 failed") {
		t.Errorf("check: %s", r)
	}

	// The tutorial's traces, in its order (the last three learn).
	ports := dpPorts(t, lab, br)
	for _, tc := range []struct {
		flow     string
		generate bool
		want     string // its datapath actions, ports as OpenFlow numbers
		table    string // a line the trace must have
	}{
		{"in_port=1,dl_dst=01:80:c2:00:00:05", false, "drop", " 0. dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0, priority 32768"},
		{"in_port=2,vlan_tci=5", false, "drop", " 1. priority 0"},
		{"in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=30", false, "pop_vlan,3,4", ""},
		{"in_port=3,dl_dst=ff:ff:ff:ff:ff:ff", false, "push_vlan(vid=30,pcp=0),1,pop_vlan,4", "mod_vlan_vid:30"},
		{"in_port=1,dl_dst=ff:ff:ff:ff:ff:ff", false, "drop", ""},
		{"in_port=1,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=55", false, "drop", ""},
		{"in_port=1,dl_vlan=30,dl_src=10:00:00:00:00:01,dl_dst=20:00:00:00:00:01", true, "pop_vlan,3,4", ""},
		{"in_port=4,dl_src=20:00:00:00:00:01,dl_dst=10:00:00:00:00:01", true, "push_vlan(vid=30,pcp=0),1", ""},
		{"in_port=1,dl_vlan=30,dl_src=10:00:00:00:00:01,dl_dst=20:00:00:00:00:01", true, "pop_vlan,4", ""},
	} {
		got, out := datapathActions(t, lab, br, ports, tc.flow, tc.generate)
		if got != tc.want || !strings.Contains(out, tc.table) {
			t.Errorf("trace %s: datapath actions %q, want %q (and %q):\n%s", tc.flow, got, tc.want, tc.table, out)
		}
	}

	// What the tutorial's learn() made is the lab's learned table.
	f := flows(t, lab)
	m := learned(f)
	if m["10:00:00:00:00:01"] != 1 || m["20:00:00:00:00:01"] != 4 {
		t.Errorf("learned MACs %v: want 10:00:00:00:00:01 on port 1 and 20:00:00:00:00:01 on port 4", m)
	}
	for _, fl := range f[0].Flows {
		if fl.Table == 10 && fl.Owner != "learned" {
			t.Errorf("table 10 entry counted as %s: %+v", fl.Owner, fl)
		}
	}

	// Real tagged frames from the trunk: VLAN 30 reaches v30a and v30b and
	// comes back tagged; VLAN 20 reaches v20 only; an untagged frame nobody.
	trunk := p + "trunk"
	mac, _ := net.ParseMAC("02:00:00:00:01:01")
	pcap := filepath.Join(dir, "trunk.pcapng")
	c := startCapture(t, lab, "trunk/eth0", "-w", pcap, "--count", "4", "vlan", "and", "arp")
	v20 := capture(t, p+"v20", "eth0")
	v30a := capture(t, p+"v30a", "eth0")
	sendFrame(t, trunk, "eth0", taggedARP(30, mac, net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.4")))
	sendFrame(t, trunk, "eth0", taggedARP(20, mac, net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.2")))
	sendFrame(t, trunk, "eth0", taggedARP(0, mac, net.ParseIP("10.0.0.1"), net.ParseIP("10.0.0.3")))
	if code := c.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("capture exit %d:\n%s", code, c.stderr.String())
	}
	seen20, seen30 := v20(), v30a()
	out, err := exec.Command("tcpdump", "-e", "-n", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	read := string(out)
	t.Logf("trunk's capture, read by tcpdump:\n%s", read)
	for _, want := range []string{"vlan 30, p 0, ethertype ARP (0x0806), Reply 10.0.0.4 is-at 02:00:00:00:30:04",
		"vlan 20, p 0, ethertype ARP (0x0806), Reply 10.0.0.2 is-at 02:00:00:00:20:02"} {
		if !strings.Contains(read, want) {
			t.Errorf("the trunk's capture lacks %q", want)
		}
	}
	if !strings.Contains(seen20, "Request who-has 10.0.0.2") || strings.Contains(seen20, "10.0.0.4 tell") || strings.Contains(seen20, "802.1Q") {
		t.Errorf("v20 (access, VLAN 20) saw:\n%s", seen20)
	}
	if !strings.Contains(seen30, "Request who-has 10.0.0.4") || strings.Contains(seen30, "10.0.0.2 tell") ||
		strings.Contains(seen30, "who-has 10.0.0.3") || strings.Contains(seen30, "802.1Q") {
		t.Errorf("v30a (access, VLAN 30) saw:\n%s", seen30)
	}

	// A flow written otherwise but meaning the same changes nothing; an
	// edited one is replaced exactly, learned entries kept.
	same := strings.Replace(readFile(t, file), `"table=4 reg0=4 actions=strip_vlan,4"`, `"table=4, reg0=0x4, actions=strip_vlan,output:4"`, 1)
	writeFile(t, dir, "ovs-advanced.yaml", same)
	if got := mustNetlab(t, "plan", "--prefix", p, file); strings.Contains(got, "add-flows") {
		t.Errorf("plan after rewriting a flow in other words:\n%s", got)
	}
	edited := strings.Replace(same, `"table=4 reg0=0 priority=50            actions=1"`, `"table=4 reg0=0 priority=50 actions=drop"`, 1)
	writeFile(t, dir, "ovs-advanced.yaml", edited)
	learnedBefore := len(learned(flows(t, lab)))
	upOut := mustNetlab(t, "up", "--prefix", p, file)
	if !strings.Contains(upOut, "add-flows "+br) || !strings.Contains(upOut, "up (1 actions)") {
		t.Errorf("up after editing one flow:\n%s", upOut)
	}
	f = flows(t, lab)
	var dropped bool
	n := 0
	for _, fl := range f[0].Flows {
		if fl.Owner == "lab" {
			n++
		}
		if fl.Owner == "lab" && fl.Table == 4 && fl.Match == "reg0=0" {
			dropped = fl.Actions == "drop"
		}
	}
	if !dropped || n != 18 {
		t.Errorf("after the edit: the flow's actions are drop %v, %d flows of the lab (want 18)", dropped, n)
	}
	if got := len(learned(f)); got < learnedBefore {
		t.Errorf("learned entries %d after the edit, %d before", got, learnedBefore)
	}
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "drift: none") {
		t.Errorf("status after the edit:\n%s", st)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
