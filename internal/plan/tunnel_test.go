package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

func splitPart(t *testing.T, file, machine string) *topology.Lab {
	t.Helper()
	lab, err := topology.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	part, err := topology.ForMachine(lab, machine)
	if err != nil {
		t.Fatal(err)
	}
	return part
}

// Each machine's part of a split lab: golden plans, converging, every MTU
// behind a tunnel sized to the underlay's, and a second plan that is empty.
func TestSplitLab(t *testing.T) {
	for _, c := range []struct {
		machine string
		mtu     int // the underlay's
	}{{"a", 1500}, {"b", 9000}} {
		t.Run(c.machine, func(t *testing.T) {
			part := splitPart(t, "testdata/split.yaml", c.machine)
			m := newMachine()
			m.snap.Underlay = &state.Underlay{Dev: "ua", Index: 2, MTU: c.mtu}
			p := m.converge(t, part)
			golden(t, "split-"+c.machine+".plan", p.String())
			inner := c.mtu - 50
			for _, tn := range part.Tunnels {
				l := m.link(t, tn.NS, tn.Name)
				if l.MTU != inner || l.VXLAN == nil || len(l.VXLAN.Remotes) != len(tn.Remotes) || !l.Up || l.TxChecksum == nil || *l.TxChecksum {
					t.Errorf("tunnel %s/%s: mtu %d, up %v, tx %v, %+v", tn.NS, tn.Name, l.MTU, l.Up, l.TxChecksum, l.VXLAN)
				}
				if b := part.Bridge(tn.Bridge); b != nil && b.Type == topology.BridgeLinux && l.Master != b.Name {
					t.Errorf("tunnel %s: master %q, want Linux bridge %s", tn.Name, l.Master, b.Name)
				}
				if b := part.Bridge(tn.Bridge); b != nil && b.Type == topology.BridgeOVS && m.snap.Bridges[b.Name].Ports[tn.Name] == nil {
					t.Errorf("tunnel %s: not a port of OVS bridge %s", tn.Name, b.Name)
				}
			}
			for _, b := range part.Bridges {
				for _, port := range b.Ports {
					if port.Tunnel {
						continue
					}
					for _, e := range []topology.End{{NS: topology.Host, Name: port.Name}, port.Peer} {
						if l := m.link(t, e.NS, e.Name); l.MTU != inner {
							t.Errorf("%s behind bridge %s's tunnel: mtu %d, want %d", e, b.Name, l.MTU, inner)
						}
					}
				}
			}
			// A hand change: a remote deleted. Up puts it back, and only it.
			tn := part.Tunnels[0]
			l := m.link(t, tn.NS, tn.Name)
			l.VXLAN.Remotes = nil
			again, err := Make(Input{Lab: part, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
			if err != nil || len(again) != 1 || again[0].Op() != OpSetRemotes {
				t.Fatalf("after a remote went: %v\n%s", err, again)
			}
			// Another VNI: the device is made again (the kernel cannot change it).
			l.VXLAN.VNI++
			again, err = Make(Input{Lab: part, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
			if err != nil || !strings.Contains(again.String(), "link del "+tn.Name) || !strings.Contains(again.String(), "type vxlan id") {
				t.Fatalf("after the VNI changed: %v\n%s", err, again)
			}
		})
	}
}

// An MTU the underlay cannot carry is refused at its line; a missing
// underlay is an error that names the machine.
func TestSplitLabMTURefused(t *testing.T) {
	dir := t.TempDir()
	file := writeLab(t, dir, strings.Replace(mustRead(t, "testdata/split.yaml"), "veth1: {peer: ovsbr0/veth0, addresses: [10.0.0.1/24]}", "veth1: {peer: ovsbr0/veth0, addresses: [10.0.0.1/24], mtu: 1500}", 1))
	part := splitPart(t, file, "a")
	m := newMachine()
	m.snap.Underlay = &state.Underlay{Dev: "ua", Index: 2, MTU: 1500}
	_, err := Make(Input{Lab: part, Snapshot: m.snap, Datapath: topology.DatapathNetdev})
	var list topology.ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), ":13:7: blue/veth1: mtu 1500 cannot cross bridge ovsbr0's tunnel") || !strings.Contains(err.Error(), "at most 1450") {
		t.Errorf("mtu 1500 over a 1500 underlay: %v", err)
	}
	m.snap.Underlay = nil
	if _, err := Make(Input{Lab: splitPart(t, "testdata/split.yaml", "b"), Snapshot: m.snap, Datapath: topology.DatapathNetdev}); err == nil || !strings.Contains(err.Error(), "machine b: its address 192.0.2.2 is on no interface") {
		t.Errorf("no underlay: %v", err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeLab(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
