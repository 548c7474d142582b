package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// emuLab: a direct link a-b, whose a end is delayed, and b's port on a
// Linux bridge with c.
const emuLab = `
name: emu
bridges:
  br0: {type: linux}
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.1.0.1/24], impair: {delay: 20ms}}
  b:
    interfaces:
      eth0: {addresses: [10.1.0.2/24]}
      eth1: {peer: br0/pb, addresses: [10.2.0.2/24]}
  c:
    interfaces:
      eth0: {peer: br0/pc, addresses: [10.2.0.3/24]}
    routes: [{to: 10.1.0.0/24, via: 10.2.0.2}]
`

// noNetem is a kernel like this project's machines: tbf and nftables
// egress, no netem.
func noNetem() *state.ImpairSupport { return &state.ImpairSupport{TBF: true, NftEgress: true} }

// A delay on a kernel without netem: the link is two TAPs and an emulator,
// which the plan says why it runs; nothing of the kernel's impairments.
func TestEmulatedWhereNoNetem(t *testing.T) {
	lab := parse(t, "emu", emuLab)
	m := newMachine()
	m.snap.Impair = noNetem()
	p := m.converge(t, lab)
	golden(t, "emulated-no-netem.plan", p.String())
	s := p.String()
	for _, want := range []string{
		"ip -n a tuntap add dev eth0 mode tap vnet_hdr",
		"ip -n b tuntap add dev eth0 mode tap vnet_hdr",
		"netlab emulate --ns a --dev eth0 --peer-ns b --peer-dev eth0",
		"a/eth0 -> b/eth0: delay 20ms; back: none",
		"a/eth0: delay needs sch_netem, which this kernel does not have",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}
	for _, not := range []string{"type veth peer name eth0 netns b", "netem delay", "qdisc"} {
		if strings.Contains(s, not) {
			t.Errorf("plan has %q:\n%s", not, s)
		}
	}
	// The other links stay veths.
	if !strings.Contains(s, "veth peer name pc") {
		t.Errorf("c's link is not a veth:\n%s", s)
	}
	// Where netem is, the same file is the kernel's.
	k := newMachine()
	k.snap.Impair = &state.ImpairSupport{TBF: true, NftEgress: true, Netem: true}
	if p := k.converge(t, lab); strings.Contains(p.String(), "emulate") || !strings.Contains(p.String(), "netem delay 20ms") {
		t.Errorf("with netem:\n%s", p)
	}
}

// A change at run time is a new model for the running emulator, in place;
// a dead emulator is started again; a TAP deleted by hand is made again,
// and its emulator restarted (it held the old TAP).
func TestEmulatedRuntime(t *testing.T) {
	lab := parse(t, "emu", emuLab)
	m := newMachine()
	m.snap.Impair = noNetem()
	m.converge(t, lab)

	m.j.SetRuntimeImpair("a", "eth0", topology.Impair{Delay: 40 * time.Millisecond, Loss: 5})
	m.j.SetRuntimeImpair("b", "eth0", topology.Impair{Rate: 10e6})
	p := plan1(t, m, lab)
	if len(p) != 1 || p[0].Op() != OpSetEmulator {
		t.Fatalf("runtime change plans:\n%s", p)
	}
	if got := p.String(); !strings.Contains(got, "a/eth0 -> b/eth0: delay 40ms loss 5%; back: rate 10mbit") {
		t.Errorf("set-emulator: %s", got)
	}
	if imp := Impairments(p, "eth0"); len(imp) != 1 {
		t.Errorf("netlab impair would not run the set-emulator: %s", imp)
	}
	m.converge(t, lab)

	delete(m.ns(t, "a").Processes, "eth0") // the emulator died
	p = plan1(t, m, lab)
	if len(p) != 1 || p[0].Op() != OpStartEmulator || p[0].Step.(StartEmulator).A.Delay != 40*time.Millisecond {
		t.Fatalf("dead emulator:\n%s", p)
	}
	m.converge(t, lab)

	delete(m.ns(t, "b").Links, "eth0") // its TAP deleted by hand
	p = m.converge(t, lab)
	var ops []string
	for _, a := range p {
		ops = append(ops, string(a.Op()))
	}
	if got := strings.Join(ops, " "); got != "stop-process add-tuntap set-link add-addr start-emulator" {
		t.Errorf("TAP deleted: %s\n%s", got, p)
	}
}

// A runtime change that needs the emulator where the link was the kernel's
// makes the link again as TAPs (the whole plan runs then: Recarries), and
// back; each converges.
func TestEmulatedSwitch(t *testing.T) {
	lab := parse(t, "emu", strings.Replace(emuLab, ", impair: {delay: 20ms}", "", 1))
	m := newMachine()
	m.snap.Impair = noNetem()
	m.converge(t, lab)
	if Recarries(Plan{}, lab, "a", "eth0") {
		t.Error("an empty plan recarries")
	}
	m.j.SetRuntimeImpair("a", "eth0", topology.Impair{Delay: 5 * time.Millisecond})
	p := m.converge(t, lab)
	s := p.String()
	if !Recarries(p, lab, "a", "eth0") || !Recarries(p, lab, "b", "eth0") || Recarries(p, lab, "c", "eth0") {
		t.Errorf("Recarries wrong for:\n%s", s)
	}
	if !strings.Contains(s, "ip -n a link del eth0") || strings.Contains(s, "ip -n b link del eth0") || !strings.Contains(s, "netlab emulate") {
		t.Errorf("veth to emulated:\n%s", s)
	}
	m.j.ResetRuntimeImpair("a", "eth0")
	p = m.converge(t, lab)
	s = p.String()
	if !strings.Contains(s, "kill $(cat /run/netlab/labs/emu/proc/a-eth0.pid)") || !strings.Contains(s, "type veth peer name eth0 netns b") ||
		!strings.Contains(s, "ip -n a link del eth0") || !strings.Contains(s, "ip -n b link del eth0") {
		t.Errorf("emulated back to a veth:\n%s", s)
	}
}

// emulator: userspace on a bridge port of Open vSwitch: the port is a TAP,
// a system port, and the emulator hands it whole frames (--ovs-port);
// down stops the emulator and deletes the host TAP.
func TestEmulatedOVSPort(t *testing.T) {
	lab := parse(t, "ovs", `
name: ovs
bridges:
  br0:
    ports:
      p1: {impair: {emulator: userspace}}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/p1}
  b:
    interfaces:
      eth0: {peer: br0/p2}
`)
	m := newMachine()
	m.snap.OVS = state.OVSInfo{Running: true, AFXDP: true}
	p := m.converge(t, lab)
	s := p.String()
	for _, want := range []string{
		"ip tuntap add dev p1 mode tap",
		"add-port br0 p1 -- set Interface p1 ofport_request=1 -- set Port p1", // system: no type=afxdp
		"--peer-ns host --peer-dev p1 --ovs-port b",
		"br0/p1: emulator: userspace",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "ethtool -K p1") || strings.Contains(s, "netns exec a ethtool") {
		t.Errorf("tx checksum offload turned off on an emulated end:\n%s", s)
	}
	d, _ := Down(DownInput{Lab: "ovs", Journal: m.j, Snapshot: m.snap})
	ds := d.String()
	if !strings.Contains(ds, "kill $(cat /run/netlab/labs/ovs/proc/a-eth0.pid)") || d[0].RemovedText() != "netlab emulate on a/eth0" {
		t.Errorf("down:\n%s", ds)
	}
}

// What only the emulator does, on what it cannot carry (a link that says
// emulator: kernel, set at run time), is an error naming it.
func TestEmulatorOnlyFieldsElsewhere(t *testing.T) {
	lab := parse(t, "emu", emuLab)
	m := newMachine()
	m.j.SetRuntimeImpair("b", "eth1", topology.Impair{GE: topology.GilbertElliott{P: 1, R: 20, LossBad: 100}, Emulator: topology.EmulatorKernel})
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j})
	var fe *topology.FeatureError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "gilbert-elliott needs netlab's userspace emulator") {
		t.Errorf("GE with emulator: kernel: %v", err)
	}
}

// A trace the planner does not have (read with the file, or given) is an
// error, not a model without it.
func TestEmulatedTrace(t *testing.T) {
	text := strings.Replace(emuLab, "{delay: 20ms}", "{trace: x.trace}", 1)
	lab := parse(t, "emu", text)
	lab.Impairments[0].Trace.Sum = "abc"
	m := newMachine()
	if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j}); err == nil || !strings.Contains(err.Error(), "trace x.trace (abc) is not loaded") {
		t.Fatalf("missing trace: %v", err)
	}
	tr := &topology.Trace{Name: "x.trace", Sum: "abc", MS: []uint32{1, 2}}
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Traces: map[string]*topology.Trace{"abc": tr}})
	if err != nil {
		t.Fatal(err)
	}
	var start *StartEmulator
	for _, a := range p {
		if s, ok := a.Step.(StartEmulator); ok {
			start = &s
		}
	}
	if start == nil || len(start.Traces) != 1 || start.Traces[0] != tr || !strings.Contains(start.Why, "trace is the userspace emulator's alone") {
		t.Errorf("start-emulator %+v", start)
	}
}

// A timeline whose impair event needs the emulator (a delay, on a kernel
// without netem) has its link emulated from up on, so the event is a new
// model in place; the same event on a link that says emulator: kernel is
// refused at its place.
func TestEmulatedForTimeline(t *testing.T) {
	const tl = `
timelines:
  slow:
    events:
      - {at: 1s, impair: {b/eth1: {delay: 50ms}}}
`
	lab := parse(t, "emu", emuLab+tl)
	m := newMachine()
	m.snap.Impair = noNetem()
	s := m.converge(t, lab).String()
	for _, want := range []string{
		"netlab emulate --ns b --dev eth1",
		"b/eth1: timeline slow's event 1: delay needs sch_netem",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}
	if err := TimelineFeatureError(lab, lab.Timelines, m.snap.Impair); err != nil {
		t.Errorf("TimelineFeatureError: %v", err)
	}
	kernel := parse(t, "emu", strings.Replace(emuLab, "eth1: {peer: br0/pb, addresses: [10.2.0.2/24]}", "eth1: {peer: br0/pb, addresses: [10.2.0.2/24], impair: {emulator: kernel}}", 1)+tl)
	if emu := EmulatedLinks(kernel, WantImpair(kernel, nil), noNetem()); len(emu) != 1 || emu[0].A.Name != "eth0" {
		t.Errorf("emulator: kernel: emulated %+v, want a-b's link alone", emu)
	}
	if err := TimelineFeatureError(kernel, kernel.Timelines, noNetem()); err == nil || !strings.Contains(err.Error(), "delay needs the kernel's netem qdisc") {
		t.Errorf("TimelineFeatureError with emulator: kernel: %v", err)
	}
}
