package plan

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The down plan of every shipped lab, up on a simulated machine, is a golden
// file; applied, it leaves the machine as empty as it was (no namespace, no
// link, no bridge, the host's sysctls as before), and a second down plan is
// empty.
func TestDownShippedLabs(t *testing.T) {
	files := shippedLabs(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			lab := load(t, f)
			m := newMachine()
			empty := m.fingerprint()
			m.converge(t, lab)
			p, left := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
			if len(left) != 0 {
				t.Errorf("left alone on a machine with only the lab: %v", left)
			}
			golden(t, name+".down", p.String())
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".down.json", string(b)+"\n")
			for _, a := range p {
				m.apply(t, a)
			}
			if got := m.fingerprint(); got != empty {
				t.Errorf("after up and down the machine is not as it was:\n%s\nwant\n%s", got, empty)
			}
			if again, _ := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap}); len(again) != 0 {
				t.Errorf("a second down still has:\n%s", again)
			}
		})
	}
}

// fingerprint describes the simulated machine: what down must give back.
func (m *machine) fingerprint() string {
	var b strings.Builder
	for _, ns := range state.SortedNames(m.snap.Namespaces) {
		o := m.snap.Namespaces[ns]
		b.WriteString("ns " + ns + ": links " + strings.Join(state.SortedNames(o.Links), ",") + "\n")
		for _, k := range state.SortedNames(o.Sysctls) {
			b.WriteString("  " + k + "=" + o.Sysctls[k] + "\n")
		}
		if len(o.Processes) > 0 || o.NAT != nil || o.Loss != nil || len(o.Routes) > 0 {
			b.WriteString("  processes, NAT or routes left\n")
		}
	}
	b.WriteString("bridges " + strings.Join(state.SortedNames(m.snap.Bridges), ",") + "\n")
	if !m.j.Empty() {
		b.WriteString("journal names objects\n")
	}
	return b.String()
}

// What is not the lab's stays, and is said: a journaled namespace another
// lab marked, a journaled host link with someone else's marker, the lab's
// port on another lab's OVS bridge (which goes; the bridge stays).
func TestDownLeavesOthersAlone(t *testing.T) {
	lab := load(t, "../../labs/blue-red.yaml")
	m := newMachine()
	m.converge(t, lab)
	m.snap.Namespaces["blue"].Owner = "other"
	m.snap.Namespaces["other-ns"] = &state.Namespace{Name: "other-ns", Owner: "other", Links: map[string]*state.Link{"lo": {Name: "lo"}}}
	m.link(t, topology.Host, "veth2").Alias = state.LinkAlias("other", topology.Host, "veth2")
	m.snap.Bridges["obr"] = &state.Bridge{Name: "obr", Type: topology.BridgeOVS, Owner: "other",
		Ports: map[string]*state.Port{"px": {Name: "px", Owner: lab.Name}, "py": {Name: "py", Owner: "other"}}}
	p, left := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
	s := p.String()
	for _, gone := range []string{"ip netns del blue", "ip netns del other-ns", "link del veth2", "del-port obr py", "del-br obr"} {
		if strings.Contains(s, gone) {
			t.Errorf("down removes what is not the lab's (%q):\n%s", gone, s)
		}
	}
	if !strings.Contains(s, "--if-exists del-port obr px") || !strings.Contains(s, "ip netns del red") {
		t.Errorf("down misses the lab's own:\n%s", s)
	}
	want := []string{"namespace blue: belongs to lab other", "interface veth2: belongs to lab other"}
	if !slices.Equal(left, want) {
		t.Errorf("left alone %q, want %q", left, want)
	}
}

// A kill between creating a lab's link and setting its alias (the kernel
// ignores an alias in the creating request) leaves the link unmarked; the
// journal named it before it was made, so down removes it: a veth end, a
// VXLAN device, a TAP, and a Linux bridge alike.
func TestDownRemovesJournaledUnmarkedHostLinks(t *testing.T) {
	for _, c := range []struct{ file, link string }{
		{"../../labs/blue-red-linux.yaml", "lxbr0"},
		{"../../labs/blue-red.yaml", "veth2"},
	} {
		t.Run(c.link, func(t *testing.T) {
			lab := load(t, c.file)
			m := newMachine()
			empty := m.fingerprint()
			m.converge(t, lab)
			m.link(t, topology.Host, c.link).Alias = ""
			p, left := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
			if len(left) != 0 {
				t.Errorf("left alone: %v", left)
			}
			for _, a := range p {
				m.apply(t, a)
			}
			if got := m.fingerprint(); got != empty {
				t.Errorf("after down:\n%s\nwant:\n%s\nplan:\n%s", got, empty, p)
			}
		})
	}
}
