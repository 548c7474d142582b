package plan

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/topology"
)

func parse(t *testing.T, name, text string) *topology.Lab {
	t.Helper()
	lab, err := topology.Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("parse %s:\n%v", name, err)
	}
	return lab
}

func load(t *testing.T, path string) *topology.Lab {
	t.Helper()
	lab, err := topology.Load(path)
	if err != nil {
		t.Fatalf("load %s:\n%v", path, err)
	}
	return lab
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), []byte(got))
}

// shippedLabs are the lab files netlab ships (labs/*.yaml).
func shippedLabs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../labs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no labs found: %v", err)
	}
	return files
}

// flowsOneByOne is what observe would say of the shipped labs' bridges whose
// flows only OpenFlow 1.0 carries (Open vSwitch says so: the ovs package's
// TestFlowsByMeaningE2E checks it for the tutorial's flows); the fake machine
// has no Open vSwitch to ask.
var flowsOneByOne = map[string]map[string]bool{"ovs-advanced": {"br0": true}}

// The plan of every shipped lab on an empty machine is a golden file: it is
// the script netlab runs, and reviewing its diff reviews a behaviour change.
func TestShippedLabsGolden(t *testing.T) {
	files := shippedLabs(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			lab := load(t, f)
			m := newMachine()
			m.snap.FlowsOneByOne = flowsOneByOne[name]
			p := m.converge(t, lab)
			golden(t, name+".plan", p.String())
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".plan.json", string(b)+"\n")
		})
	}
}

const twoHosts = `
name: pt
bridges:
  br0: {type: linux, addresses: [10.1.0.254/24]}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/pa, addresses: [10.1.0.1/24], mac: "02:00:00:00:00:0a", mtu: 1400}
    routes: [{to: default, via: 10.1.0.254}]
  b:
    interfaces:
      eth0: {peer: br0/pb, addresses: [10.1.0.2/24]}
      link: {peer: c/link, addresses: [10.2.0.1/30]}
  c:
    interfaces:
      link: {addresses: [10.2.0.2/30]}
    routes: [{to: 10.1.0.0/24, via: 10.2.0.1}]
`

func TestLinuxBridgeLabConverges(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	p := m.converge(t, lab)
	golden(t, "linux-bridge.plan", p.String())
}

// Deleting one end of a veth by hand: the plan makes the pair again, with
// its settings, addresses and routes, and nothing else.
func TestRepairDeletedVeth(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	delete(m.snap.Namespaces["c"].Links, "link") // as if only this end vanished; b/link stays
	m.snap.Namespaces["c"].Routes = nil          // routes go with the device
	p := m.converge(t, lab)
	golden(t, "repair-veth.plan", p.String())
}

func TestRepairDeletedAddress(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	m.snap.Namespaces["a"].Links["eth0"].Addrs = nil
	m.snap.Namespaces["a"].Routes = nil
	p := m.converge(t, lab)
	want := "ip -n a addr replace 10.1.0.1/24 dev eth0\nip -n a route replace default via 10.1.0.254 proto 78\n"
	if p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
}

// Editing the file: add a namespace, change an address, drop a route. The
// plan changes exactly that.
func TestEditedFile(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	edited := strings.NewReplacer(
		"addresses: [10.1.0.2/24]", "addresses: [10.1.0.3/24]",
		"    routes: [{to: 10.1.0.0/24, via: 10.2.0.1}]\n", "",
	).Replace(twoHosts) + `  d:
    interfaces:
      eth0: {peer: br0/pd, addresses: [10.1.0.4/24]}
`
	lab2 := parse(t, "two.yaml", edited)
	p := m.converge(t, lab2)
	golden(t, "edit.plan", p.String())
	// And back: the new namespace goes, the old address returns.
	p = m.converge(t, lab)
	golden(t, "edit-back.plan", p.String())
}

func TestHostSysctlRestoredWhenDropped(t *testing.T) {
	lab := load(t, "../../labs/blue-red.yaml")
	m := newMachine()
	m.converge(t, lab)
	j := &state.Journal{Lab: lab.Name, HostSysctls: map[string]string{"net.ipv4.ip_forward": "0"}}
	lab.Host.Sysctls = nil
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: j, Datapath: "netdev"})
	if err != nil {
		t.Fatal(err)
	}
	want := "sysctl -w net.ipv4.ip_forward=0   # value before the lab\n"
	if p.String() != want {
		t.Errorf("plan:\n%s\nwant:\n%s", p, want)
	}
}

// Objects with the lab's names that are not the lab's: the plan refuses,
// naming each with file:line, and plans nothing.
func TestClashesAreRefused(t *testing.T) {
	lab := load(t, "../../labs/blue-red.yaml")
	m := newMachine()
	m.snap.Namespaces["blue"] = &state.Namespace{Name: "blue", Links: map[string]*state.Link{}}
	m.snap.Namespaces["red"] = &state.Namespace{Name: "red", Owner: "other", Links: map[string]*state.Link{}}
	m.snap.Namespaces[topology.Host].Links["veth0"] = &state.Link{Name: "veth0", Kind: state.KindVeth}
	m.snap.Bridges["ovsbr0"] = &state.Bridge{Name: "ovsbr0", Type: topology.BridgeOVS, Ports: map[string]*state.Port{}}
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev"})
	if p != nil {
		t.Errorf("plan despite clashes:\n%s", p)
	}
	var list topology.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v is not an ErrorList", err)
	}
	got := err.Error()
	for _, want := range []string{
		"namespace blue already exists and is not netlab's (no marker)",
		"namespace red already exists and belongs to lab other",
		"interface veth0 already exists in namespace host and is not netlab's (no marker)",
		"bridge ovsbr0 already exists and is not netlab's (no marker)",
		"labs/blue-red.yaml:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
}

// Another lab's objects are invisible to this lab's plan unless they clash.
func TestOtherLabUntouched(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	other := parse(t, "other.yaml", strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(twoHosts,
		"name: pt", "name: po"), "br0", "br9"), "\n  a:", "\n  a9:"))
	_ = other
	// A link of another lab inside the host namespace is not deleted.
	m.snap.Namespaces[topology.Host].Links["zz9"] = &state.Link{Name: "zz9", Kind: state.KindVeth, Alias: state.LinkAlias("po", topology.Host, "zz9")}
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 0 {
		t.Errorf("plan touches another lab:\n%s", p)
	}
}

// A veth without its alias inside a lab namespace (a crash between creating
// and marking it) is made again, not reported as a clash.
func TestUnmarkedVethInLabNamespaceIsRemade(t *testing.T) {
	lab := parse(t, "two.yaml", twoHosts)
	m := newMachine()
	m.converge(t, lab)
	m.snap.Namespaces["b"].Links["link"].Alias = ""
	p := m.converge(t, lab)
	if !strings.HasPrefix(p.String(), "ip -n b link del link\nip -n b link add link") {
		t.Errorf("plan:\n%s", p)
	}
}

const flowLab = `
name: fl
bridges:
  sw:
    fail-mode: secure
    openflow: learning-switch
    flows: ["table=0,priority=100,dl_type=0x88cc,actions=drop"]
namespaces:
  a:
    interfaces:
      eth0: {peer: sw/pa, addresses: [10.5.0.1/24]}
  b:
    interfaces:
      eth0: {peer: sw/pb, addresses: [10.5.0.2/24]}
`

// Flows: installed once, not again while in sync, again after the file's
// flows change or a fail-mode change wiped them, and removed with the file's
// last flow.
func TestFlowsLifecycle(t *testing.T) {
	lab := parse(t, "fl.yaml", flowLab)
	m := newMachine()
	p := m.converge(t, lab)
	if !strings.Contains(p.String(), "ovs-ofctl -O OpenFlow14 --bundle add-flows sw - <<'EOF'\ndelete cookie=") {
		t.Errorf("first plan installs no flows:\n%s", p)
	}
	if !strings.Contains(p.String(), ",table=0,priority=100,dl_type=0x88cc,actions=drop\nEOF") {
		t.Errorf("the file's own flow is missing:\n%s", p)
	}
	// Drift: the flows differ (a hand edit, or the file changed).
	m.snap.Bridges["sw"].FlowsInSync = false
	if p := m.converge(t, lab); len(p) != 1 || p[0].Op() != OpSetFlows {
		t.Errorf("drifted flows: plan\n%s", p)
	}
	// The fail mode changes: flows are wiped and must come back.
	lab2 := parse(t, "fl.yaml", strings.Replace(flowLab, "fail-mode: secure", "fail-mode: standalone", 1))
	p = m.converge(t, lab2)
	if len(p) != 2 || p[0].Op() != OpSetFailMode || p[1].Op() != OpSetFlows {
		t.Errorf("fail-mode change: plan\n%s", p)
	}
	// No more flows in the file: the lab's flows go.
	lab3 := parse(t, "fl.yaml", strings.Replace(strings.Replace(strings.Replace(flowLab, "fail-mode: secure", "fail-mode: standalone", 1), "    openflow: learning-switch\n", "", 1),
		`    flows: ["table=0,priority=100,dl_type=0x88cc,actions=drop"]`+"\n", "", 1))
	p = m.converge(t, lab3)
	if len(p) != 1 || p[0].Op() != OpDelFlows {
		t.Errorf("flows dropped from file: plan\n%s", p)
	}
}

// External interfaces are the user's: a missing one, one attached elsewhere
// and one carrying the host's default route are refused (the last unless
// forced), before anything changes.
func TestExternalRefusals(t *testing.T) {
	lab := parse(t, "ext.yaml", `
name: ext
bridges:
  br0: {type: linux, external: [up0, busy0, gone0]}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/pa, addresses: [10.9.0.1/24]}
`)
	m := newMachine()
	host := m.snap.Namespaces[topology.Host]
	host.Links["up0"] = &state.Link{Name: "up0", Kind: "device", Up: true}
	host.Links["busy0"] = &state.Link{Name: "busy0", Kind: state.KindVeth, Master: "docker0"}
	m.snap.HostDefaultRouteDevs = []string{"up0"}
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev"})
	for _, want := range []string{
		"ext.yaml:4:33: bridges.br0.external[0]: external interface up0 carries the host's default route",
		"external interface busy0 is already attached to docker0",
		"external interface gone0 does not exist on this machine",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	delete(host.Links, "busy0")
	lab.Bridges[0].External = lab.Bridges[0].External[:1]
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Datapath: "netdev", Force: true})
	if err != nil || !strings.Contains(p.String(), "ip link set up0 master br0 up") {
		t.Errorf("forced: %v\n%s", err, p)
	}
}

// An nftables table with the lab's name that netlab did not make (no journal
// entry) is a clash, not something to replace.
func TestForeignNATTableIsAClash(t *testing.T) {
	lab := load(t, "../../labs/nat.yaml")
	m := newMachine()
	m.converge(t, lab)
	m.j.RemoveNAT("gw")
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: "netdev"})
	if err == nil || !strings.Contains(err.Error(), "nftables table inet netlab_nat already exists in namespace gw and netlab did not make it") {
		t.Errorf("err = %v", err)
	}
}

// A TUN left without its marker by a kill between creating and marking it,
// in the lab's own namespace, is the lab's: made again, not a clash.
func TestUnmarkedTunInLabNamespaceIsRemade(t *testing.T) {
	lab, err := topology.Load("../../labs/tun-reflector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := newMachine()
	m.converge(t, lab)
	ns := lab.Namespaces[0]
	l := m.link(t, ns.Name, ns.TUNs[0].Name)
	l.Alias = ""
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatalf("an unmarked TUN in the lab's namespace: %v", err)
	}
	if s := p.String(); !strings.Contains(s, "link del "+l.Name) || !strings.Contains(s, "tuntap add dev "+l.Name) {
		t.Errorf("plan does not remake the TUN:\n%s", s)
	}
}
