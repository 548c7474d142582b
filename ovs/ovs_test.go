package ovs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goovs "github.com/digitalocean/go-openvswitch/ovs"

	"github.com/netlab-dev/netlab/internal/state"
)

// fakeOVS records every command and answers from a script: the first
// response whose match is a substring of the joined argv wins.
type fakeOVS struct {
	calls     []string
	responses []fakeResponse
}

type fakeResponse struct {
	match string
	out   string
	err   error
}

func (f *fakeOVS) on(match, out string, err error) *fakeOVS {
	f.responses = append(f.responses, fakeResponse{match, out, err})
	return f
}

func (f *fakeOVS) exec(cmd string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{cmd}, args...), " ")
	f.calls = append(f.calls, line)
	for _, r := range f.responses {
		if strings.Contains(line, r.match) {
			return []byte(r.out), r.err
		}
	}
	return nil, nil
}

const (
	testDir = "/run/netlab-unit"
	prefix  = "ovs-vsctl --db=unix:/run/netlab-unit/db.sock --timeout=10 "
)

func newFakeClient(t *testing.T, f *fakeOVS) *Client {
	t.Helper()
	old := hostInterfaceExists
	hostInterfaceExists = func(string) bool { return true }
	t.Cleanup(func() { hostInterfaceExists = old })
	o := buildOptions([]Option{WithExec(f.exec), WithRunDir(testDir), withSystemDBs()})
	return newClient(o, filepath.Join(testDir, dbSock), true)
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertCalls(t *testing.T, f *fakeOVS, want ...string) {
	t.Helper()
	if len(f.calls) != len(want) {
		t.Fatalf("calls:\n%s\nwant %d calls:\n%s", strings.Join(f.calls, "\n"), len(want), strings.Join(want, "\n"))
	}
	for i := range want {
		if f.calls[i] != want[i] {
			t.Errorf("call %d:\n got %s\nwant %s", i, f.calls[i], want[i])
		}
	}
}

const (
	findBr0    = "--format=json --columns=name,datapath_type,fail_mode,external_ids find Bridge name=br0"
	noRows     = `{"data":[],"headings":["name","datapath_type","fail_mode","external_ids"]}`
	br0OfLab1  = `{"data":[["br0","netdev","secure",["map",[["netlab-lab","lab1"]]]]],"headings":["name","datapath_type","fail_mode","external_ids"]}`
	br0OfLab2  = `{"data":[["br0","netdev",["set",[]],["map",[["netlab-lab","lab2"]]]]],"headings":["name","datapath_type","fail_mode","external_ids"]}`
	br0NoOwner = `{"data":[["br0","",["set",[]],["map",[]]]],"headings":["name","datapath_type","fail_mode","external_ids"]}`
)

func TestEnsureBridgeNew(t *testing.T) {
	f := (&fakeOVS{}).on("find Bridge", noRows, nil)
	c := newFakeClient(t, f)
	if err := c.EnsureBridge(BridgeSpec{Name: "br0", Lab: "lab1", Datapath: "netdev", FailMode: "secure"}); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f,
		prefix+findBr0,
		prefix+"-- add-br br0 -- set Bridge br0 datapath_type=netdev fail_mode=secure external_ids:netlab-lab=lab1 protocols=OpenFlow10,OpenFlow13,OpenFlow14",
	)
}

func TestEnsureBridgeExistingOwned(t *testing.T) {
	f := (&fakeOVS{}).on("find Bridge", br0OfLab1, nil)
	c := newFakeClient(t, f)
	// Same datapath and fail mode: neither is rewritten (that would drop flows).
	if err := c.EnsureBridge(BridgeSpec{Name: "br0", Lab: "lab1", Datapath: "netdev", FailMode: "secure"}); err != nil {
		t.Fatal(err)
	}
	// Different fail mode: set.
	if err := c.EnsureBridge(BridgeSpec{Name: "br0", Lab: "lab1", Datapath: "netdev", FailMode: "standalone"}); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f,
		prefix+findBr0,
		prefix+"-- --may-exist add-br br0 -- set Bridge br0 external_ids:netlab-lab=lab1 protocols=OpenFlow10,OpenFlow13,OpenFlow14",
		prefix+findBr0,
		prefix+"-- --may-exist add-br br0 -- set Bridge br0 fail_mode=standalone external_ids:netlab-lab=lab1 protocols=OpenFlow10,OpenFlow13,OpenFlow14",
	)
}

func TestEnsureBridgeRefusesForeign(t *testing.T) {
	for name, row := range map[string]string{"other lab": br0OfLab2, "no marker": br0NoOwner} {
		t.Run(name, func(t *testing.T) {
			f := (&fakeOVS{}).on("find Bridge", row, nil)
			c := newFakeClient(t, f)
			err := c.EnsureBridge(BridgeSpec{Name: "br0", Lab: "lab1", Datapath: "netdev"})
			if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "br0") {
				t.Fatalf("err = %v, want ErrNotOwned naming br0", err)
			}
			assertCalls(t, f, prefix+findBr0) // read only, nothing written
		})
	}
}

func TestEnsureBridgeWaitsForInterface(t *testing.T) {
	f := (&fakeOVS{}).on("find Bridge", noRows, nil)
	o := buildOptions([]Option{WithExec(f.exec), WithRunDir(testDir), WithTimeout(50 * time.Millisecond)})
	c := newClient(o, filepath.Join(testDir, dbSock), true)
	old := hostInterfaceExists
	hostInterfaceExists = func(string) bool { return false }
	defer func() { hostInterfaceExists = old }()
	err := c.EnsureBridge(BridgeSpec{Name: "br0", Lab: "lab1", Datapath: "netdev"})
	if err == nil || !strings.Contains(err.Error(), "interface br0 did not appear") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(f.calls[0], "--timeout=1 ") {
		t.Errorf("50ms must round up to --timeout=1: %s", f.calls[0])
	}
}

// A bridge's row as the protocol's select returns it: its uuid and owner
// are read, and a row of another shape is an error, not an empty owner.
func TestUUIDAndOwner(t *testing.T) {
	// Decoded JSON: every array is a []any.
	row := func(ids ...[]any) dbRow {
		pairs := []any{}
		for _, kv := range ids {
			pairs = append(pairs, kv)
		}
		return dbRow{"_uuid": []any{"uuid", "u-1"}, "external_ids": []any{"map", pairs}}
	}
	for _, c := range []struct {
		name  string
		row   dbRow
		owner string
		bad   bool
	}{
		{"owned", row([]any{"other", "x"}, []any{state.OVSLabKey, "lab1"}), "lab1", false},
		{"no marker", row(), "", false},
		{"another lab", row([]any{state.OVSLabKey, "lab2"}), "lab2", false},
		{"bad uuid", dbRow{"_uuid": "u-1", "external_ids": []any{"map", []any{}}}, "", true},
		{"bad external_ids", dbRow{"_uuid": []any{"uuid", "u-1"}, "external_ids": "x"}, "", true},
	} {
		uuid, owner, err := uuidAndOwner(c.row)
		if (err != nil) != c.bad || (!c.bad && (uuid != "u-1" || owner != c.owner)) {
			t.Errorf("%s: uuidAndOwner = %q, %q, %v; want owner %q, error %v", c.name, uuid, owner, err, c.owner, c.bad)
		}
	}
}

// observeTwoPorts is what Observe reads for bridge br0 (lab1) with ports
// p1 (ofport 1) and p2 (ofport 2) and bridge other (no marker) with port p9.
const observeTwoPorts = `{"data":[[["uuid","b0"],"br0","netdev","secure",["map",[["netlab-lab","lab1"]]],["set",[["uuid","pl"],["uuid","pp1"],["uuid","pp2"]]]],[["uuid","b1"],"other","netdev",["set",[]],["map",[]],["set",[["uuid","po"],["uuid","pp9"]]]]],"headings":["_uuid","name","datapath_type","fail_mode","external_ids","ports"]}
{"data":[[["uuid","pl"],"br0",["map",[]],["uuid","il"]],[["uuid","pp1"],"p1",["map",[["netlab-lab","lab1"]]],["uuid","ip1"]],[["uuid","pp2"],"p2",["map",[]],["uuid","ip2"]],[["uuid","po"],"other",["map",[]],["uuid","io"]],[["uuid","pp9"],"p9",["map",[]],["uuid","ip9"]]],"headings":["_uuid","name","external_ids","interfaces"]}
{"data":[[["uuid","il"],"br0",["set",[]],65534,"internal"],[["uuid","ip1"],"p1",1,1,""],[["uuid","ip2"],"p2",2,2,"afxdp-nonpmd"],[["uuid","io"],"other",["set",[]],65534,"internal"],[["uuid","ip9"],"p9",["set",[]],1,""]],"headings":["_uuid","name","ofport_request","ofport","type"]}
{"data":[[["set",["afxdp","afxdp-nonpmd","system","tap"]]]],"headings":["iface_types"]}
`

const observePrefix = prefix + "--format=json -- --columns=_uuid,name,datapath_type,fail_mode,external_ids,ports,controller list Bridge -- --columns=_uuid,name,external_ids,interfaces,tag,trunks,vlan_mode list Port -- --columns=_uuid,name,ofport_request,ofport,type list Interface -- --columns=iface_types list Open_vSwitch -- --columns=_uuid,target,is_connected list Controller"

func TestEnsurePortsTxn(t *testing.T) {
	f := (&fakeOVS{}).
		on("list Bridge", observeTwoPorts, nil).
		on("list Interface p1 p3 p4", `{"data":[["p1",1,["set",[]]],["p3",3,["set",[]]],["p4",7,["set",[]]]],"headings":["name","ofport","error"]}`, nil)
	c := newFakeClient(t, f)
	err := c.EnsurePorts("br0", []PortSpec{
		{Name: "p1", OFPort: 1, Lab: "lab1"},
		{Name: "p3", OFPort: 3, Lab: "lab1", Type: PortTypeAFXDPNonPMD},
		{Name: "p4", Lab: "lab1", Type: PortTypeAFXDP}, // OVS chooses the number
	})
	if err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f,
		observePrefix,
		prefix+"-- --may-exist add-port br0 p1 -- set Interface p1 ofport_request=1 -- set Port p1 external_ids:netlab-lab=lab1"+
			" -- --may-exist add-port br0 p3 -- set Interface p3 ofport_request=3 type=afxdp-nonpmd options:xdp-mode=native -- set Port p3 external_ids:netlab-lab=lab1"+
			" -- --may-exist add-port br0 p4 -- set Interface p4 type=afxdp options:xdp-mode=native -- set Port p4 external_ids:netlab-lab=lab1",
		prefix+"--format=json --columns=name,ofport,error list Interface p1 p3 p4",
	)
}

func TestSetPortTypes(t *testing.T) {
	f := (&fakeOVS{}).
		on("list Interface p1 p2", `{"data":[["p1",1,["set",[]]],["p2",-1,"could not open network device p2 (Operation not permitted)"]],"headings":["name","ofport","error"]}`, nil)
	c := newFakeClient(t, f)
	err := c.SetPortTypes("br0", []PortSpec{{Name: "p1", Type: ""}, {Name: "p2", Type: PortTypeAFXDPNonPMD}})
	if err == nil || !strings.Contains(err.Error(), "add port p2 to br0: could not open network device p2 (Operation not permitted)") {
		t.Errorf("err = %v, want p2's Interface error", err)
	}
	assertCalls(t, f,
		prefix+"-- set Interface p1 type=system -- set Interface p2 type=afxdp-nonpmd options:xdp-mode=native",
		prefix+"--format=json --columns=name,ofport,error list Interface p1 p2",
	)
	if err := c.SetPortTypes("br0", []PortSpec{{Name: "p1", Type: "dpdk"}}); err == nil {
		t.Error("type dpdk accepted")
	}
}

func TestEnsurePortsRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bridge string
		port   PortSpec
		want   string
		owned  bool
	}{
		{"port on another bridge", "br0", PortSpec{Name: "p9", OFPort: 9, Lab: "lab1"}, "port is attached to bridge other", false},
		{"unmarked port on our bridge", "br0", PortSpec{Name: "p2", OFPort: 2, Lab: "lab1"}, "port p2 exists without a netlab-lab marker", true},
		{"bridge of nobody", "other", PortSpec{Name: "p5", OFPort: 5, Lab: "lab1"}, "bridge other exists without a netlab-lab marker", true},
		{"bridge of another lab", "br0", PortSpec{Name: "p5", OFPort: 5, Lab: "lab2"}, `bridge br0 belongs to lab "lab1", not "lab2"`, true},
		{"no bridge", "nope", PortSpec{Name: "p5", OFPort: 5, Lab: "lab1"}, "no such bridge", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := (&fakeOVS{}).on("list Bridge", observeTwoPorts, nil)
			c := newFakeClient(t, f)
			err := c.EnsurePorts(tc.bridge, []PortSpec{tc.port})
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrNotOwned) != tc.owned {
				t.Fatalf("err = %v, want %q (ErrNotOwned %v)", err, tc.want, tc.owned)
			}
			assertCalls(t, f, observePrefix) // nothing written
		})
	}
}

func TestEnsurePortsReportsUnopenedDevice(t *testing.T) {
	// Real output of OVS 3.1 for a port whose device does not exist: the
	// transaction itself exits 0.
	f := (&fakeOVS{}).
		on("list Bridge", observeTwoPorts, nil).
		on("list Interface", `{"data":[["nltnoexist",-1,"could not open network device nltnoexist (No such device)"],["p5",6,["set",[]]]],"headings":["name","ofport","error"]}`, nil)
	c := newFakeClient(t, f)
	err := c.EnsurePorts("br0", []PortSpec{{Name: "nltnoexist", OFPort: 8, Lab: "lab1"}, {Name: "p5", OFPort: 5, Lab: "lab1"}})
	for _, want := range []string{
		"ovs: add port nltnoexist to br0: could not open network device nltnoexist (No such device)",
		"ovs: add port p5 to br0: got ofport 6, requested 5",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestDeletePortsTxn(t *testing.T) {
	f := &fakeOVS{}
	c := newFakeClient(t, f)
	if err := c.DeletePorts("br0", []string{"p1", "p2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePorts("br0", nil); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f, prefix+"-- --if-exists del-port br0 p1 -- --if-exists del-port br0 p2")
}

func TestDeletePortsErrors(t *testing.T) {
	exit1 := errors.New("exit status 1")
	t.Run("bridge gone", func(t *testing.T) {
		f := (&fakeOVS{}).on("del-port", "ovs-vsctl: no bridge named br0", exit1)
		if err := newFakeClient(t, f).DeletePorts("br0", []string{"p1"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("port elsewhere", func(t *testing.T) {
		f := (&fakeOVS{}).on("del-port", "ovs-vsctl: bridge br0 does not have a port p1", exit1)
		err := newFakeClient(t, f).DeletePorts("br0", []string{"p1"})
		var oe *goovs.Error
		if !errors.As(err, &oe) || oe.Err != exit1 {
			t.Fatalf("err = %#v, want a wrapped *ovs.Error", err)
		}
		want := "ovs: delete ports of br0: exit status 1: ovs-vsctl: bridge br0 does not have a port p1"
		if err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
}

func TestSetFailModeSkipsNoop(t *testing.T) {
	f := (&fakeOVS{}).on("get-fail-mode", "secure\n", nil)
	c := newFakeClient(t, f)
	if err := c.SetFailMode("br0", "secure"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFailMode("br0", "standalone"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFailMode("br0", "bogus"); err == nil {
		t.Error("bogus fail mode accepted")
	}
	assertCalls(t, f, prefix+"get-fail-mode br0", prefix+"get-fail-mode br0", prefix+"set-fail-mode br0 standalone")
}

func TestSetOFPort(t *testing.T) {
	f := &fakeOVS{}
	c := newFakeClient(t, f)
	if err := c.SetOFPort("p1", 12); err != nil {
		t.Fatal(err)
	}
	if err := c.SetOFPort("p1", 0); err == nil {
		t.Error("ofport 0 accepted")
	}
	assertCalls(t, f, prefix+"set Interface p1 ofport_request=12")
}

func TestOFCtlAndVSCtlArgv(t *testing.T) {
	f := &fakeOVS{}
	c := newFakeClient(t, f)
	if _, err := c.OFCtl("dump-flows", "br0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VSCtl("show"); err != nil {
		t.Fatal(err)
	}
	assertCalls(t, f, "ovs-ofctl --timeout=10 dump-flows br0", prefix+"show")
	if got := c.Info(); got != (state.OVSInfo{Running: true, Private: true, DB: "unix:/run/netlab-unit/db.sock", RunDir: "/run/netlab-unit"}) {
		t.Errorf("Info = %+v", got)
	}
	if !strings.Contains(strings.Join(c.env, " "), "OVS_RUNDIR=/run/netlab-unit") {
		t.Errorf("env = %v", c.env)
	}
}

func TestParseObserve(t *testing.T) {
	// testdata/observe.json is real `ovs-vsctl --format=json` output of OVS
	// 3.1 for Observe's command (regenerate: NETLAB_OVS_GOLDEN=1 with the
	// end-to-end test): bridge nltg0 (lab nltlab, netdev, secure) with ports
	// nltgA (ofport 7) and nltgB (ofport_request 8, device missing → -1);
	// bridge nltg1 without marker, datapath netdev, no ports.
	s, err := parseObserve([]byte(readTestdata(t, "observe.json")))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(describe(s.bridges))
	want := "nltg0 ovs owner=nltlab dp=netdev fail=secure ports=[nltgA owner=nltlab req=7 ofport=7 type=afxdp-nonpmd nltgB owner=nltlab req=8 ofport=-1]\n" +
		"nltg1 ovs owner= dp=netdev fail= ports=[]\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if s.portBridge["nltg1"] != "nltg1" || s.portBridge["nltgA"] != "nltg0" {
		t.Errorf("portBridge = %v", s.portBridge)
	}
}

func TestParseObserveTwoPorts(t *testing.T) {
	s, err := parseObserve([]byte(observeTwoPorts))
	if err != nil {
		t.Fatal(err)
	}
	want := "br0 ovs owner=lab1 dp=netdev fail=secure ports=[p1 owner=lab1 req=1 ofport=1 p2 owner= req=2 ofport=2 type=afxdp-nonpmd]\n" +
		"other ovs owner= dp=netdev fail= ports=[p9 owner= req=0 ofport=1]\n"
	if got := describe(s.bridges); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(s.ifaceTypes, ","); got != "afxdp,afxdp-nonpmd,system,tap" {
		t.Errorf("iface types = %q", got)
	}
}

func TestParseObserveErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`{"data":[],"headings":[]}`,
		`{"data":[["x"]],"headings":["a","b"]}` + "\n{}\n{}",
		`not json`,
	} {
		if _, err := parseObserve([]byte(in)); err == nil {
			t.Errorf("parseObserve(%q) = nil error", in)
		}
	}
}

// describe renders bridges deterministically.
func describe(brs map[string]*state.Bridge) string {
	var b strings.Builder
	for _, n := range state.SortedNames(brs) {
		br := brs[n]
		var ports []string
		for _, pn := range state.SortedNames(br.Ports) {
			p := br.Ports[pn]
			d := fmt.Sprintf("%s owner=%s req=%d ofport=%d", p.Name, p.Owner, p.OFPortRequest, p.OFPort)
			if p.Type != "" {
				d += " type=" + p.Type
			}
			ports = append(ports, d)
		}
		fmt.Fprintf(&b, "%s %s owner=%s dp=%s fail=%s ports=[%s]\n", br.Name, br.Type, br.Owner, br.Datapath, br.FailMode, strings.Join(ports, " "))
	}
	return b.String()
}

func TestListsOpenvswitch(t *testing.T) {
	for in, want := range map[string]bool{
		"kernel/net/openvswitch/openvswitch.ko.zst: kernel/net/nsh/nsh.ko.zst kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko.zst\n": true,
		"kernel/net/openvswitch/openvswitch.ko\n":                                              true,
		"kernel/net/openvswitch/vport-vxlan.ko.xz: kernel/net/openvswitch/openvswitch.ko.xz\n": false,
		"kernel/net/bridge/bridge.ko\nkernel/net/tun.ko\n":                                     false,
		"": false,
	} {
		if got := listsOpenvswitch([]byte(in)); got != want {
			t.Errorf("listsOpenvswitch(%q) = %v, want %v", in, got, want)
		}
	}
	if dp := DefaultDatapath(); dp != DatapathSystem && dp != DatapathNetdev {
		t.Errorf("DefaultDatapath() = %q", dp)
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"br0", "nlt1a2b", "a23456789012345"} {
		if err := validName(n); err != nil {
			t.Errorf("validName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "a234567890123456", "a b", "a=b", "a/b", "a:b", ".."} {
		if err := validName(n); err == nil {
			t.Errorf("validName(%q) = nil", n)
		}
	}
}

// TestConcurrentCalls runs go-openvswitch and raw calls in parallel under
// the race detector (go-openvswitch appends to a shared flags slice).
func TestConcurrentCalls(t *testing.T) {
	var mu sync.Mutex
	n := 0
	exec := func(cmd string, args ...string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return []byte("secure"), nil
	}
	o := buildOptions([]Option{WithExec(exec), WithRunDir(testDir)})
	c := newClient(o, filepath.Join(testDir, dbSock), true)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = c.ovs.VSwitch.GetFailMode("br0")
			_, _ = c.ovs.VSwitch.ListBridges()
			_, _ = c.VSCtl("show")
			_ = c.Info()
		})
	}
	wg.Wait()
	if n != 24 {
		t.Errorf("%d calls, want 24", n)
	}
}

// ovs-vswitchd opens AF_XDP ports one by one (~60 ms each): transactions
// carry at most maxAFXDPPerTxn of them, in order, system ports riding along.
func TestAFXDPChunks(t *testing.T) {
	var ports []PortSpec
	for i := range 40 {
		typ := PortTypeAFXDPNonPMD
		if i%4 == 3 {
			typ = ""
		}
		ports = append(ports, PortSpec{Name: fmt.Sprintf("p%d", i), Type: typ})
	}
	chunks := afxdpChunks(ports)
	var all []PortSpec
	for i, c := range chunks {
		n := 0
		for _, p := range c {
			if isAFXDP(p.Type) {
				n++
			}
		}
		if n > maxAFXDPPerTxn || n == 0 {
			t.Errorf("chunk %d has %d AF_XDP ports", i, n)
		}
		all = append(all, c...)
	}
	if len(chunks) != 2 || fmt.Sprint(all) != fmt.Sprint(ports) {
		t.Errorf("%d chunks, order kept: %v", len(chunks), fmt.Sprint(all) == fmt.Sprint(ports))
	}
	if got := afxdpChunks(ports[:3]); len(got) != 1 || len(got[0]) != 3 {
		t.Errorf("3 ports: %v", got)
	}
	if got := afxdpChunks(nil); len(got) != 0 {
		t.Errorf("no ports: %v", got)
	}
}
