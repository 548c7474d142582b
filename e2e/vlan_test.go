package e2e

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/observe"
)

// TestVLANPorts: the shipped labs/vlans.yaml, access and trunk ports on an
// Open vSwitch bridge. Hosts of one VLAN reach each other and not those of
// the other VLAN in their subnet; 802.1Q frames a trunk host sends reach the
// access ports of their VLAN and come back tagged (captured and read by
// tcpdump); status shows each port's VLAN and the internal port; a tag
// cleared by hand is drift that up repairs; a second up does nothing.
func TestVLANPorts(t *testing.T) {
	requireRoot(t)
	requireTcpdump(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "vlans.yaml", readFile(t, "../labs/vlans.yaml"))
	labUp(t, file, p, "vlans")
	lab := p + "vlans"
	t.Cleanup(func() { netlab(t, "down", lab) })

	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "2 passed, 0 failed") {
		t.Errorf("check: %s", r)
	}
	st := mustNetlab(t, "status", lab)
	for _, want := range []string{p + "o-a20(2, ", "vlan access 20)", "vlan trunk 20,30)", p + "o-mgmt(5, internal, vlan access 20)", "drift: none"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	if err := exec.Command("ip", "link", "show", "dev", p+"o-mgmt").Run(); err != nil {
		t.Errorf("internal port %so-mgmt has no device: %v", p, err)
	}

	// The trunk host's tagged frames.
	trunk := p + "otrunk"
	mac, _ := net.ParseMAC("02:00:00:01:00:01")
	pcap := filepath.Join(dir, "trunk.pcapng")
	c := startCapture(t, lab, "otrunk/eth0", "-w", pcap, "--count", "4", "vlan", "and", "arp")
	a20 := capture(t, p+"oa20", "eth0")
	sendFrame(t, trunk, "eth0", taggedARP(30, mac, net.ParseIP("10.1.0.1"), net.ParseIP("10.1.0.4")))
	sendFrame(t, trunk, "eth0", taggedARP(20, mac, net.ParseIP("10.1.0.1"), net.ParseIP("10.1.0.2")))
	if code := c.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("capture exit %d:\n%s", code, c.stderr.String())
	}
	seen20 := a20()
	out, err := exec.Command("tcpdump", "-e", "-n", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{"vlan 30, p 0, ethertype ARP (0x0806), Reply 10.1.0.4 is-at 02:00:00:01:30:04",
		"vlan 20, p 0, ethertype ARP (0x0806), Reply 10.1.0.2 is-at 02:00:00:01:20:02"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the trunk's capture lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(seen20, "Request who-has 10.1.0.2") || strings.Contains(seen20, "who-has 10.1.0.4") || strings.Contains(seen20, "802.1Q") {
		t.Errorf("oa20 (access, VLAN 20) saw:\n%s", seen20)
	}

	// A tag cleared by hand: drift, repaired by up.
	mustNetlab(t, "ovs", lab, "--", "ovs-vsctl", "clear", "Port", p+"o-a20", "tag", "vlan_mode")
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "set Port "+p+"o-a20 vlan_mode=access trunks=[] tag=20") {
		t.Errorf("status after clearing the tag by hand:\n%s", st)
	}
	if up := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(up, "up (1 actions)") {
		t.Errorf("up after clearing the tag:\n%s", up)
	}
	if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
		t.Errorf("second up: %s", got)
	}
	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "2 passed, 0 failed") {
		t.Errorf("check after the repair: %s", r)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}

// TestKernelVLANs: a Linux bridge's VLANs and VLAN interfaces need the
// kernel's bridge VLAN filtering and 8021q. Where the kernel lacks them
// (this project's machines lack both), validate and up refuse the file at
// each place that needs them, naming the kernel feature, and make nothing;
// where it has them, the lab comes up and the same VLAN reaches, the other
// does not.
func TestKernelVLANs(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	sup, err := observe.ProbeVLAN()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel VLANs: %+v", sup)
	file := "testdata/vlan/linux.yaml"
	if sup.BridgeFiltering && sup.Interfaces {
		labUp(t, file, p, "lvlan")
		if r := mustNetlab(t, "check", p+"lvlan"); !strings.Contains(r, "3 passed, 0 failed") {
			t.Errorf("check: %s", r)
		}
		mustNetlab(t, "down", p+"lvlan")
		sameHost(t, before)
		return
	}
	v := netlab(t, "validate", "--prefix", p, file)
	u := netlab(t, "up", "--prefix", p, file)
	if v.code != 2 || u.code == 0 {
		t.Errorf("validate exit %d, up exit %d: want 2 and a failure", v.code, u.code)
	}
	for _, r := range []result{v, u} {
		if !sup.BridgeFiltering && !strings.Contains(r.out, "linux.yaml:7:5: bridges.lb0.vlan-filtering: VLANs on a Linux bridge need the kernel's bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)") {
			t.Errorf("refusal lacks the bridge's place:\n%s", r.out)
		}
		if !sup.Interfaces && !strings.Contains(r.out, "linux.yaml:19:13: namespaces.ltrunk.interfaces.eth0.vlans[0]: VLAN interface eth0.30 needs the kernel's 802.1Q VLAN interfaces (8021q, CONFIG_VLAN_8021Q)") {
			t.Errorf("refusal lacks the VLAN interface's place:\n%s", r.out)
		}
	}
	sameHost(t, before)
}
