package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

const impairLab = `
name: imp
bridges:
  br0:
    type: linux
    ports:
      pb: {impair: {loss: 20%}}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/pa, addresses: [10.1.0.1/24], impair: {rate: 20mbit}}
  b:
    interfaces:
      eth0: {peer: br0/pb, addresses: [10.1.0.2/24]}
`

func plan1(t *testing.T, m *machine, lab *topology.Lab) Plan {
	t.Helper()
	p, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImpairLifecycle(t *testing.T) {
	lab := parse(t, "imp", impairLab)
	m := newMachine()
	p := m.converge(t, lab)
	s := p.String()
	for _, want := range []string{
		"tc -n a qdisc replace dev eth0 root handle 4e4c: tbf rate 20mbit burst 25000b limit 150000b",
		"add chain netdev netlab_imp loss_pb { type filter hook egress device \"pb\" priority 0; }",
		"add rule netdev netlab_imp loss_pb numgen random mod 10000 < 2000 counter drop",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("plan lacks %q:\n%s", want, s)
		}
	}

	// A file edit changes exactly that qdisc, in one action.
	edited := parse(t, "imp", strings.Replace(impairLab, "rate: 20mbit", "rate: 50mbit", 1))
	p = plan1(t, m, edited)
	if len(p) != 1 || p[0].Op() != OpSetQdisc || p[0].Step.(SetQdisc).Impair.Rate != 50e6 {
		t.Fatalf("rate edit plans:\n%s", p)
	}
	m.converge(t, edited)

	// loss: 0 drops the host's loss table, in one action.
	noLoss := parse(t, "imp", strings.Replace(impairLab, "loss: 20%", "loss: 0", 1))
	p = plan1(t, m, noLoss)
	if len(p) != 2 || p[0].Op() != OpDelLoss || p[1].Op() != OpSetQdisc {
		t.Fatalf("loss 0 plans:\n%s", p)
	}
	m.converge(t, lab)

	// A qdisc deleted by hand is drift, repaired by one action.
	m.link(t, "a", "eth0").Qdisc = nil
	if p = plan1(t, m, lab); len(p) != 1 || p[0].Op() != OpSetQdisc {
		t.Fatalf("drift plans:\n%s", p)
	}
	m.converge(t, lab)

	// The impairment gone from the file: netlab's qdisc is removed.
	plain := parse(t, "imp", strings.Replace(impairLab, ", impair: {rate: 20mbit}", "", 1))
	p = plan1(t, m, plain)
	if len(p) != 1 || p[0].String() != "tc -n a qdisc del dev eth0 root handle 4e4c:" {
		t.Fatalf("removal plans:\n%s", p)
	}
	m.converge(t, plain)

	// A runtime impairment (netlab impair, journaled) stands in for the file's.
	m.j.SetRuntimeImpair("a", "eth0", topology.Impair{Rate: 1e6, Loss: 5})
	p = plan1(t, m, plain)
	if len(p) != 2 || p[0].Op() != OpSetQdisc || p[1].Op() != OpSetLoss || len(p[1].Step.(SetLoss).Loss) != 1 || p[1].Step.(SetLoss).NS != "a" {
		t.Fatalf("runtime impairment plans:\n%s", p)
	}
	m.converge(t, plain)
	m.j.ResetRuntimeImpair("a", "eth0")
	m.converge(t, plain)
	if m.link(t, "a", "eth0").Qdisc != nil || m.ns(t, "a").Loss != nil {
		t.Fatal("reset runtime impairment left qdisc or loss")
	}
}

func TestImpairNeverTouchesForeignQdisc(t *testing.T) {
	lab := parse(t, "imp", impairLab)
	m := newMachine()
	m.converge(t, lab)
	m.link(t, "a", "eth0").Qdisc = &state.Qdisc{Kind: "htb", Handle: 1}
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j})
	var list topology.ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), "root qdisc htb 1: that netlab did not make") {
		t.Fatalf("foreign qdisc: %v", err)
	}
	// Without an impairment in the file, a foreign qdisc is simply not ours.
	plain := parse(t, "imp", strings.Replace(impairLab, ", impair: {rate: 20mbit}", "", 1))
	for _, a := range plan1(t, m, plain) {
		if a.Op() == OpDelQdisc {
			t.Fatalf("plan deletes a foreign qdisc: %s", a)
		}
	}
	// Nor is a loss table netlab did not make (not journaled).
	m.link(t, "a", "eth0").Qdisc = nil
	m.j.RemoveLoss(topology.Host)
	if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j}); err == nil || !strings.Contains(err.Error(), "netdev netlab_imp already exists") {
		t.Fatalf("foreign loss table: %v", err)
	}
}

// Without netem a link whose end says emulator: kernel cannot have a
// delay: an error at each field, the machine untouched. (Without that, the
// userspace emulator carries it: emulated_test.go.)
func TestImpairFeatureError(t *testing.T) {
	lab := parse(t, "imp", strings.Replace(impairLab, "{rate: 20mbit}", "{rate: 20mbit, delay: 20ms, jitter: 2ms, emulator: kernel}", 1))
	m := newMachine()
	m.snap.Impair = &state.ImpairSupport{TBF: true, NftEgress: true}
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j})
	var fe *topology.FeatureError
	if !errors.As(err, &fe) || len(fe.Errs) != 2 {
		t.Fatalf("netem fields on a kernel without netem: %v", err)
	}
	if got := fe.Errs[0].Error(); got != "imp:11:84: namespaces.a.interfaces.eth0.impair.delay: delay needs the kernel's netem qdisc (sch_netem, CONFIG_NET_SCH_NETEM), which this kernel does not have" {
		t.Errorf("error = %q", got)
	}
	// Rate and loss need no netem.
	m.snap.Impair = &state.ImpairSupport{TBF: true, NftEgress: true}
	if _, err := Make(Input{Lab: parse(t, "imp", impairLab), Snapshot: m.snap, Journal: m.j}); err != nil {
		t.Fatal(err)
	}
	// With netem: a tbf root and a netem child.
	m.snap.Impair.Netem = true
	p := m.converge(t, lab)
	if !strings.Contains(p.String(), "tc -n a qdisc replace dev eth0 parent 4e4c:1 handle 4e4d: netem delay 20ms 2ms") {
		t.Errorf("plan:\n%s", p)
	}
}

// An impaired OVS port is an AF_PACKET port: AF_XDP frames would pass the
// qdisc and the egress hook by.
func TestImpairedOVSPortIsSystem(t *testing.T) {
	lab := parse(t, "ovs", `
name: ovs
bridges:
  br0:
    ports:
      p1: {impair: {loss: 5%}}
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
	if !strings.Contains(s, "add-port br0 p2 -- set Interface p2 ofport_request=2 type=afxdp-nonpmd") || strings.Contains(s, "p1 ofport_request=1 type=afxdp") {
		t.Errorf("port types:\n%s", s)
	}
	m.j.SetRuntimeImpair(topology.Host, "p2", topology.Impair{Rate: 1e6})
	if p := plan1(t, m, lab); !strings.Contains(p.String(), "set Interface p2 type=system") {
		t.Errorf("runtime impairment of an AF_XDP port:\n%s", p)
	}
	explicit := parse(t, "ovs", `
name: ovs
bridges:
  br0:
    port-type: afxdp-nonpmd
    ports:
      p1: {impair: {loss: 5%}}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/p1}
`)
	_, err := Make(Input{Lab: explicit, Snapshot: newMachine().snap, Datapath: topology.DatapathNetdev})
	if err == nil || !strings.Contains(err.Error(), "ovs:7:12: bridges.br0.ports.p1.impair: port p1 is impaired") {
		t.Errorf("explicit AF_XDP type on an impaired port: %v", err)
	}
}
