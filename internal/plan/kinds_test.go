package plan

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// samples has one step of every kind, with what its printer needs.
var samples = []Step{
	AddNamespace{NS: "a", Alias: "netlab:l"},
	DelNamespace{NS: "a"},
	AddVeth{NS: "a", Link: "e0", PeerNS: topology.Host, Peer: "pa"},
	AddLinuxBridge{NS: topology.Host, Link: "br0"},
	AddTuntap{NS: "a", Link: "tun0", Tuntap: &state.Tuntap{Owner: -1, Group: -1}},
	AddVXLAN{NS: "a", Link: "vx0", VXLAN: &state.VXLANConfig{VNI: 7}},
	SetRemotes{NS: "a", Link: "vx0", Added: []netip.Addr{netip.MustParseAddr("192.0.2.2")}},
	SetLink{NS: "a", Link: "e0", Up: true},
	SetTxChecksum{NS: "a", Link: "e0"},
	SetGRO{NS: "a", Link: "vx0"},
	DelLink{NS: "a", Link: "e0"},
	DelLinks{NS: topology.Host, Links: []string{"pa", "pb"}},
	AddAddr{NS: "a", Link: "e0", Addr: netip.MustParsePrefix("10.0.0.1/24")},
	DelAddr{NS: "a", Link: "e0", Addr: netip.MustParsePrefix("10.0.0.1/24")},
	ReplaceRoute{NS: "a", Route: &state.Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254")}},
	DelRoute{NS: "a", Route: &state.Route{To: netip.MustParsePrefix("10.9.0.0/16"), Dev: "e0"}},
	SetSysctl{NS: topology.Host, Key: "net.ipv4.ip_forward", Value: "1"},
	RestoreSysctl{NS: topology.Host, Key: "net.ipv4.ip_forward", Value: "0"},
	AddBridge{Bridge: "br0", Datapath: "netdev", FailMode: "secure"},
	SetFailMode{Bridge: "br0", FailMode: "secure"},
	DelBridge{Bridge: "br0"},
	AddPorts{Bridge: "br0", Ports: []Port{{Name: "pa", OFPort: 1}}},
	DelPorts{Bridge: "br0", Ports: []Port{{Name: "pa"}}},
	SetOFPort{Bridge: "br0", Ports: []Port{{Name: "pa", OFPort: 1}}},
	SetPortType{Bridge: "br0", Ports: []Port{{Name: "pa", Type: "system"}}},
	SetFlows{Bridge: "br0", Flows: []string{"actions=normal"}, Cookie: 1},
	DelFlows{Bridge: "br0", Cookie: 1},
	AttachExternal{Link: "eth1", Bridge: "br0", Ports: []Port{{Name: "eth1", OFPort: 3}}},
	DetachExternal{Link: "eth1", Bridge: "br0"},
	SetNAT{NS: "a", NAT: []state.NATRule{{Source: netip.MustParsePrefix("10.0.0.0/24"), Out: "wan"}}},
	DelNAT{NS: "a"},
	SetLoss{NS: "a", Loss: []state.LossRule{{Link: "e0", Percent: 5}}},
	DelLoss{NS: "a"},
	StartProcess{NS: "a", Link: "tun0", Spec: "--queues 1"},
	StopProcess{NS: "a", Link: "tun0"},
	StopNSProcesses{Namespaces: []string{"a"}},
	SetQdisc{NS: "a", Link: "e0", Impair: &topology.Impair{Rate: 1e6}},
	DelQdisc{NS: "a", Link: "e0", Handle: state.QdiscHandleTBF},
	SetHosts{Lines: 3, Hash: "h"},
	SetView{NS: "a", Files: []state.ViewFile{{Path: "/etc/x", Mode: 0o644, Content: []byte("x")}}, Dirs: []string{"/run/x"}, Hash: "v"},
	StartService{NS: "a", Name: "web", Program: []string{"httpd"}, Restart: "on-failure", Ready: &Ready{TCP: 80}, Hash: "s"},
	StopService{NS: "a", Name: "web"},
	LinkDown{NS: topology.Host, Link: "pa", Cable: "a/e0"},
	LinkUp{NS: topology.Host, Link: "pa"},
	SetPartition{NS: "a", Drop: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::2")}, Partitions: []string{"p1"}},
	DelPartition{NS: "a"},
	SetPortVLAN{Bridge: "br0", Ports: []Port{{Name: "pa", VLAN: &state.PortVLAN{Mode: "access", Tag: 20}}, {Name: "pb"}}},
	SetControllers{Bridge: "br0", Targets: []string{"tcp:127.0.0.1:6653"}},
	SetVLANFiltering{Bridge: "br0", On: true},
	SetBridgeVLANs{Link: "pa", VLANs: []state.BridgeVLAN{{VID: 20, PVID: true, Untagged: true}}},
	AddVLAN{NS: "a", Link: "e0.20", Parent: "e0", ID: 20, Alias: "netlab:l:a/e0.20"},
	StartTimeline{Name: "chaos", Events: []*topology.Event{{LinkDown: []string{"a/e0"}}}, Hash: "h", Steps: 1},
	StopTimeline{Name: "chaos"},
}

// TestEveryKind walks the table of action kinds: every step type of the
// package is in samples, and every kind has its row (where it sorts in a
// down), a printer, a simulator step and a JSON form that starts with its
// op. A removal kind sorts in a down and says what it removed; a kind that
// is not one never appears in a down. internal/apply's test checks that
// every kind has a handler.
func TestEveryKind(t *testing.T) {
	declared := stepTypes(t)
	var named []string
	seen := map[Op]bool{}
	for _, s := range samples {
		named = append(named, reflect.TypeOf(s).Name())
		op := s.Op()
		if seen[op] {
			t.Errorf("two samples of kind %s", op)
		}
		seen[op] = true
		k, ok := kinds[op]
		if !ok {
			t.Errorf("kind %s has no row in kinds", op)
		}
		if _, ok := simSteps[op]; !ok {
			t.Errorf("kind %s has no simulator step", op)
		}
		a := Action{Step: s, Lab: "l"}
		if a.String() == "" || strings.Contains(a.String(), "%!") {
			t.Errorf("kind %s prints %q", op, a.String())
		}
		if s.Scope() == "" {
			t.Errorf("kind %s has no scope", op)
		}
		_, removal := s.(Removal)
		if removal != (k.down > 0) {
			t.Errorf("kind %s: a removal (%v) must sort in a down (rank %d), and only a removal", op, removal, k.down)
		}
		b, err := json.Marshal(a)
		if err != nil || !strings.HasPrefix(string(b), `{"op":"`+string(op)+`"`) {
			t.Errorf("kind %s as JSON: %s, %v", op, b, err)
		}
	}
	for op := range kinds {
		if !seen[op] {
			t.Errorf("kind %s has a row but no sample", op)
		}
	}
	slices.Sort(named)
	if !slices.Equal(named, declared) {
		t.Errorf("step types %v, samples %v: every step type needs a sample", declared, named)
	}
}

// stepTypes lists the types of the package (tests aside) that have an Op
// method: its step types.
func stepTypes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "Op" {
				continue
			}
			typ := fn.Recv.List[0].Type
			if star, ok := typ.(*ast.StarExpr); ok {
				typ = star.X
			}
			out = append(out, typ.(*ast.Ident).Name)
		}
	}
	slices.Sort(out)
	return out
}

// A down plan is ordered by the kinds' ranks, whatever order it was made in.
func TestSortDown(t *testing.T) {
	p := Plan{{Step: RestoreSysctl{NS: topology.Host, Key: "k"}}, {Step: DelNamespace{NS: "a"}}, {Step: StopProcess{NS: "a", Link: "t"}},
		{Step: DelNamespace{NS: "b"}}, {Step: DelBridge{Bridge: "br"}}}
	sortDown(p)
	var got []string
	for _, a := range p {
		got = append(got, string(a.Op())+" "+a.Scope())
	}
	want := []string{"stop-process ns:a", "del-bridge bridge:br", "del-namespace ns:a", "del-namespace ns:b", "restore-sysctl ns:host"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %q, want %q", got, want)
	}
}

func TestShellJoin(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"sh", "-c", "echo oops; exit 3"}, `sh -c 'echo oops; exit 3'`},
		{[]string{"a", ""}, `a ''`},
		{[]string{"it's"}, `'it'\''s'`},
		{[]string{"/usr/lib/frr/zebra", "-P", "0", "--log=stdout"}, `/usr/lib/frr/zebra -P 0 --log=stdout`},
	} {
		if got := shellJoin(c.in); got != c.want {
			t.Errorf("shellJoin(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
