package ovs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"

	"github.com/netlab-dev/netlab/internal/state"
)

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "Open vSwitch, veths") }

// requireOVS skips when the Open vSwitch programs are missing, but fails
// when NETLAB_E2E=1.
func requireOVS(t *testing.T) {
	t.Helper()
	var missing []string
	for _, p := range []string{"ovsdb-tool", ovsdbServer, vswitchd, "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat(vswitchSchema); err != nil {
		missing = append(missing, vswitchSchema)
	}
	if len(missing) == 0 {
		return
	}
	testkit.SkipOrFail(t, fmt.Sprintf("needs Open vSwitch (missing %v)", missing))
}

func randHex(t *testing.T, n int) string { return testkit.Name(t, "", 2*n) }

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// testRunDir makes a fresh run directory under /run; at cleanup the daemons
// started in it are stopped and it is removed.
func testRunDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/run", "netlab-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopByPidfiles(t, dir) })
	return dir
}

// stopByPidfiles stops the daemons of a test instance (by PID from their
// pidfiles, checked to be those programs) and removes the directory.
func stopByPidfiles(t *testing.T, dir string) {
	for _, d := range [][]string{{vswitchd, "exit", "--cleanup"}, {ovsdbServer, "exit"}} {
		if pid, ok := daemonPID(dir, d[0]); ok {
			ctl := filepath.Join(dir, fmt.Sprintf("%s.%d.ctl", d[0], pid))
			_ = exec.Command("ovs-appctl", append([]string{"--timeout=5", "-t", ctl}, d[1:]...)...).Run()
			if !waitGone(pid, d[0], 5*time.Second) && isDaemon(pid, d[0]) {
				t.Errorf("cleanup: killing %s pid %d", d[0], pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Error(err)
	}
}

// waitNoVSwitchd makes sure no other ovs-vswitchd runs in this network
// namespace: only one can (the userspace datapath's ovs-netdev device lives
// there). The tests run in a sandbox of their own (TestMain), so another
// daemon is one a test left exiting; on the machine (NETLAB_TEST_ON_HOST=1)
// it may be the user's, which this test cannot disturb. It waits a few
// seconds for a daemon that is exiting, then skips, or fails under
// NETLAB_E2E=1.
func waitNoVSwitchd(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		pid, cmdline, found := otherVSwitchd()
		if !found {
			return
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("another ovs-vswitchd runs (pid %d: %s); a private instance cannot start beside it", pid, cmdline)
			testkit.SkipOrFail(t, msg)
		}
	}
}

// privateClient is privateInstance's client, for a test that needs root,
// Open vSwitch and nothing else of the instance.
func privateClient(t *testing.T) *Client {
	t.Helper()
	requireRoot(t)
	requireOVS(t)
	c, _, _ := privateInstance(t)
	return c
}

// privateInstance starts a private OVS in a fresh directory under /run; the
// daemons it started are stopped at cleanup whatever happens in the test.
func privateInstance(t *testing.T) (*Client, string, time.Duration) {
	t.Helper()
	dir := testRunDir(t)
	waitNoVSwitchd(t)
	start := time.Now()
	c, err := EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
	took := time.Since(start)
	if err != nil {
		if b, rerr := os.ReadFile(filepath.Join(dir, vswitchd+".log")); rerr == nil {
			t.Logf("ovs-vswitchd.log:\n%s", b)
		}
		t.Fatal(err)
	}
	return c, dir, took
}

func TestPrivateInstanceE2E(t *testing.T) {
	requireRoot(t)
	requireOVS(t)
	netdevBefore := linkExists("ovs-netdev")

	c, dir, took := privateInstance(t)
	t.Logf("private instance start (ovsdb-tool create + ovsdb-server + init + ovs-vswitchd + wait): %v", took)
	if info := c.Info(); !info.Running || !info.Private || info.DB != "unix:"+filepath.Join(dir, dbSock) {
		t.Fatalf("Info = %+v", info)
	}
	vsPID, ok1 := daemonPID(dir, vswitchd)
	dbPID, ok2 := daemonPID(dir, ovsdbServer)
	if !ok1 || !ok2 {
		t.Fatalf("daemons not running: vswitchd %d %v, ovsdb-server %d %v", vsPID, ok1, dbPID, ok2)
	}

	// Both entry points find the running instance; nothing is restarted.
	start := time.Now()
	c2, err := EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureRunning on a running instance: %v", time.Since(start))
	if c2.Info() != c.Info() {
		t.Errorf("second EnsureRunning: %+v", c2.Info())
	}
	if pid, _ := daemonPID(dir, vswitchd); pid != vsPID {
		t.Errorf("vswitchd restarted: %d → %d", vsPID, pid)
	}
	if _, err := Connect(WithRunDir(dir), withSystemDBs()); err != nil {
		t.Fatal(err)
	}

	// A second private instance elsewhere is refused before anything starts.
	other, err := os.MkdirTemp("/run", "netlab-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(other)
	if _, err := EnsureRunning(WithRunDir(other), withSystemDBs()); !errors.Is(err, ErrOtherVSwitchd) {
		t.Errorf("second private instance: %v, want ErrOtherVSwitchd", err)
	} else {
		t.Logf("second private instance: %v", err)
	}
	if _, ok := daemonPID(other, ovsdbServer); ok {
		t.Errorf("ovsdb-server started in %s", other)
	}

	id := randHex(t, 2)
	lab := "nltlab" + id
	br, br2, foreign := "nlt"+id, "nlt"+id+"b", "nlt"+id+"f"

	// EnsureBridge twice: idempotent.
	spec := BridgeSpec{Name: br, Lab: lab, Datapath: DatapathNetdev, FailMode: FailModeSecure}
	for i := range 2 {
		start := time.Now()
		if err := c.EnsureBridge(spec); err != nil {
			t.Fatalf("EnsureBridge #%d: %v", i+1, err)
		}
		t.Logf("EnsureBridge #%d: %v", i+1, time.Since(start))
	}
	t.Cleanup(func() { _ = c.DeleteBridge(br, lab) })
	if !linkExists(br) {
		t.Fatalf("tap %s missing", br)
	}
	if err := c.EnsureBridge(BridgeSpec{Name: br2, Lab: lab, Datapath: DatapathNetdev, FailMode: FailModeSecure}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(br2, lab) })

	// A bridge made by hand, without the marker, is refused and untouched.
	if _, err := c.VSCtl("add-br", foreign, "--", "set", "Bridge", foreign, "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.VSCtl("--if-exists", "del-br", foreign) })
	if err := c.EnsureBridge(BridgeSpec{Name: foreign, Lab: lab, Datapath: DatapathNetdev}); !errors.Is(err, ErrNotOwned) {
		t.Errorf("EnsureBridge(foreign) = %v, want ErrNotOwned", err)
	} else {
		t.Logf("foreign bridge: %v", err)
	}
	if err := c.DeleteBridge(foreign, lab); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeleteBridge(foreign) = %v, want ErrNotOwned", err)
	}
	if out, _ := c.VSCtl("get", "Bridge", foreign, "external_ids"); strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("foreign bridge modified: external_ids %s", out)
	}
	// Another lab's bridge is refused as well, and stays.
	theirs := "nlt" + id + "o"
	if err := c.EnsureBridge(BridgeSpec{Name: theirs, Lab: lab + "x", Datapath: DatapathNetdev}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(theirs, lab+"x") })
	if err := c.DeleteBridge(theirs, lab); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeleteBridge(another lab's) = %v, want ErrNotOwned", err)
	}
	if brs, err := c.Observe(); err != nil || brs[theirs] == nil {
		t.Errorf("another lab's bridge %s gone after a refused delete (%v)", theirs, err)
	}
	if err := c.DeleteBridge(theirs, lab+"x"); err != nil {
		t.Fatal(err)
	}

	// The lab's bridge goes in two halves: its row at once, its device
	// once the wait returns; then there is nothing left to delete.
	br3 := "nlt" + id + "c"
	if err := c.EnsureBridge(BridgeSpec{Name: br3, Lab: lab, Datapath: DatapathNetdev}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(br3, lab) })
	wait, err := c.StartDeleteBridge(br3, lab)
	if err != nil || wait == nil {
		t.Fatalf("StartDeleteBridge(%s) = %v, %v", br3, wait != nil, err)
	}
	if brs, err := c.Observe(); err != nil || brs[br3] != nil {
		t.Errorf("after StartDeleteBridge the database still has %s (%v)", br3, err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if linkExists(br3) {
		t.Errorf("device %s still there after the wait", br3)
	}
	if wait, err := c.StartDeleteBridge(br3, lab); wait != nil || err != nil {
		t.Errorf("StartDeleteBridge of a deleted bridge = %v, %v; want nil, nil", wait != nil, err)
	}

	// 21 veth pairs in the host namespace; the "a" ends go on the bridge.
	var veths []string
	for i := range 21 {
		a, b := fmt.Sprintf("nlt%sa%02d", id, i), fmt.Sprintf("nlt%sb%02d", id, i)
		run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", a).Run() })
		run(t, "ip", "link", "set", a, "up")
		run(t, "ip", "link", "set", b, "up")
		veths = append(veths, a)
	}
	spec1 := []PortSpec{{Name: veths[0], OFPort: 1, Lab: lab}}
	var spec20 []PortSpec
	for i, v := range veths[1:] {
		spec20 = append(spec20, PortSpec{Name: v, OFPort: i + 2, Lab: lab})
	}
	start = time.Now()
	if err := c.EnsurePorts(br, spec1); err != nil {
		t.Fatal(err)
	}
	t1 := time.Since(start)
	start = time.Now()
	if err := c.EnsurePorts(br, spec20); err != nil {
		t.Fatal(err)
	}
	t20 := time.Since(start)
	all := append(append([]PortSpec{}, spec1...), spec20...)
	var allNames []string
	for _, p := range all {
		allNames = append(allNames, p.Name)
	}
	// The bare transaction (ovs-vsctl waits for ovs-vswitchd to apply it).
	for _, ps := range [][]PortSpec{spec1, spec20} {
		if err := c.DeletePorts(br, allNames); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := c.VSCtl(portsTxn(br, ps, DefaultXDPMode)...); err != nil {
			t.Fatal(err)
		}
		t.Logf("add-port transaction alone, %d port(s): %v", len(ps), time.Since(start))
	}
	start = time.Now()
	if err := c.EnsurePorts(br, all); err != nil { // idempotent
		t.Fatal(err)
	}
	tAgain := time.Since(start)
	t.Logf("EnsurePorts (observe + 1 txn + ofport check): 1 port %v, 20 ports %v, 21 existing ports again %v", t1, t20, tAgain)

	// Observe shows owner, datapath, fail mode and the ports with ofport == ofport_request.
	start = time.Now()
	brs, err := c.Observe()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Observe (%d bridges, %d ports): %v", len(brs), len(brs[br].Ports), time.Since(start))
	got := brs[br]
	if got == nil || got.Owner != lab || got.Datapath != DatapathNetdev || got.FailMode != FailModeSecure || got.Type != "ovs" {
		t.Fatalf("Observe[%s] = %+v", br, got)
	}
	if _, ok := got.Ports[br]; ok {
		t.Error("LOCAL port listed")
	}
	if len(got.Ports) != 21 {
		t.Errorf("%d ports, want 21", len(got.Ports))
	}
	for _, p := range all {
		op := got.Ports[p.Name]
		if op == nil || op.Owner != lab || op.OFPortRequest != p.OFPort || op.OFPort != p.OFPort {
			t.Errorf("port %s = %+v, want ofport %d owned by %s", p.Name, op, p.OFPort, lab)
		}
	}
	if f := brs[foreign]; f == nil || f.Owner != "" {
		t.Errorf("Observe[%s] = %+v", foreign, f)
	}
	// Over the protocol and through ovs-vsctl, observe reads the same.
	viaRPC, err := c.observeRPC()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.VSCtl(observeArgs...)
	if err != nil {
		t.Fatal(err)
	}
	viaCLI, err := parseObserve(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaRPC, viaCLI) {
		t.Errorf("observe over the protocol:\n%+v\nthrough ovs-vsctl:\n%+v", viaRPC, viaCLI)
	}
	// What down reads: every bridge with its owner; the ports (with their
	// owners) only of the bridges that are not the lab's, the lab's port on
	// the foreign bridge among them.
	fi, fl := "nlt"+id+"fi", "nlt"+id+"fl"
	if _, err := c.VSCtl("add-port", foreign, fi, "--", "set", "Interface", fi, "type=internal",
		"--", "add-port", foreign, fl, "--", "set", "Interface", fl, "type=internal", "--", "set", "Port", fl, "external_ids:"+state.OVSLabKey+"="+lab); err != nil {
		t.Fatal(err)
	}
	full, err := c.Observe()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	forDown, err := c.ObserveLab(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ObserveLab: %v", time.Since(start))
	if len(forDown) != len(full) {
		t.Errorf("ObserveLab has %d bridges, Observe %d", len(forDown), len(full))
	}
	for name, b := range full {
		d := forDown[name]
		if d == nil || d.Name != b.Name || d.Type != b.Type || d.Owner != b.Owner || d.Datapath != b.Datapath || d.FailMode != b.FailMode {
			t.Errorf("ObserveLab[%s] = %+v, Observe: %+v", name, d, b)
			continue
		}
		var want map[string]*state.Port
		if b.Owner != lab {
			want = map[string]*state.Port{}
			for pn, p := range b.Ports {
				want[pn] = &state.Port{Name: pn, Owner: p.Owner}
			}
		}
		if len(want) != len(d.Ports) || (len(want) > 0 && !reflect.DeepEqual(want, d.Ports)) {
			t.Errorf("ObserveLab[%s] ports %+v, want %+v", name, d.Ports, want)
		}
	}
	if p := forDown[foreign].Ports[fl]; p == nil || p.Owner != lab {
		t.Errorf("ObserveLab: the lab's port %s on %s = %+v", fl, foreign, p)
	}
	if p := forDown[foreign].Ports[fi]; p == nil || p.Owner != "" {
		t.Errorf("ObserveLab: the foreign port %s on %s = %+v", fi, foreign, p)
	}
	if ofp, err := c.OFCtl("show", br); err != nil || !strings.Contains(string(ofp), "1("+veths[0]+")") {
		t.Errorf("ovs-ofctl show %s: %v\n%s", br, err, ofp)
	}

	// Refusals: a port on another bridge; a device that does not exist.
	if err := c.EnsurePorts(br2, spec1); err == nil || !strings.Contains(err.Error(), "attached to bridge "+br) {
		t.Errorf("EnsurePorts(port on other bridge) = %v", err)
	}
	// A port on the lab's bridge without the lab's marker is not the lab's.
	unmarked := "nlt" + id + "um"
	if _, err := c.VSCtl("add-port", br, unmarked, "--", "set", "Interface", unmarked, "type=internal"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePorts(br, []PortSpec{{Name: unmarked, OFPort: 77, Lab: lab}}); !errors.Is(err, ErrNotOwned) {
		t.Errorf("EnsurePorts(an unmarked port on the lab's bridge) = %v, want ErrNotOwned", err)
	}
	if _, err := c.VSCtl("del-port", br, unmarked); err != nil {
		t.Fatal(err)
	}
	missing := "nlt" + id + "zz"
	err = c.EnsurePorts(br2, []PortSpec{{Name: missing, OFPort: 5, Lab: lab}})
	if err == nil || !strings.Contains(err.Error(), "No such device") {
		t.Errorf("EnsurePorts(missing device) = %v", err)
	} else {
		t.Logf("missing device: %v", err)
	}
	if err := c.DeletePorts(br2, []string{missing}); err != nil {
		t.Fatal(err)
	}
	// Started, the same port is committed at once and found missing when
	// finished, once ovs-vswitchd has tried to open it.
	finish, err := c.StartEnsurePorts(br2, []PortSpec{{Name: missing, OFPort: 5, Lab: lab}})
	if err != nil || finish == nil {
		t.Fatalf("StartEnsurePorts(missing device) = %v, finish %v; want it committed", err, finish != nil)
	}
	if err := finish(true); err == nil || !strings.Contains(err.Error(), "No such device") {
		t.Errorf("finish(missing device) = %v", err)
	}
	// finish(true) read the switch in its wait's transaction: the next
	// Observe answers with it, sending nothing, and it is the switch as a
	// fresh look reads it.
	c.mu.Lock()
	sent := c.sent
	c.mu.Unlock()
	kept, err := c.Observe()
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	resent := c.sent != sent
	c.mu.Unlock()
	if resent {
		t.Errorf("Observe after finish(true) sent a transaction; want the kept answer")
	}
	fresh, err := c.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(kept, fresh) {
		t.Errorf("kept observation %+v\nfresh %+v", kept, fresh)
	}
	if p := kept[br2].Ports[missing]; p == nil || p.OFPort != -1 {
		t.Errorf("kept observation's %s: %+v, want it there with ofport -1", missing, p)
	}
	if err := c.DeletePorts(br2, []string{missing}); err != nil {
		t.Fatal(err)
	}

	// SetOFPort moves a port's number.
	if err := c.SetOFPort(veths[0], 100); err != nil {
		t.Fatal(err)
	}
	if brs, err := c.Observe(); err != nil || brs[br].Ports[veths[0]].OFPort != 100 {
		t.Errorf("after SetOFPort: %v %+v", err, brs[br].Ports[veths[0]])
	}

	// SetFailMode.
	if err := c.SetFailMode(br2, FailModeStandalone); err != nil {
		t.Fatal(err)
	}

	// Delete ports, then bridges; all idempotent.
	var names []string
	for _, p := range all {
		names = append(names, p.Name)
	}
	for range 2 {
		if err := c.DeletePorts(br, names); err != nil {
			t.Fatal(err)
		}
	}
	if brs, _ := c.Observe(); len(brs[br].Ports) != 0 {
		t.Errorf("ports left: %v", state.SortedNames(brs[br].Ports))
	}
	if stopped, err := c.StopPrivateIfUnused(); stopped || err != nil {
		t.Fatalf("StopPrivateIfUnused with bridges = %v, %v", stopped, err)
	}
	for _, b := range []string{br, br2} {
		for range 2 {
			if err := c.DeleteBridge(b, lab); err != nil {
				t.Fatal(err)
			}
		}
		if linkExists(b) {
			t.Errorf("tap %s still present after DeleteBridge", b)
		}
	}
	if err := c.DeletePorts(br, names); err != nil {
		t.Errorf("DeletePorts on a deleted bridge: %v", err)
	}
	if _, err := c.VSCtl("del-br", foreign); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	stopped, err := c.StopPrivateIfUnused()
	if err != nil || !stopped {
		t.Fatalf("StopPrivateIfUnused = %v, %v", stopped, err)
	}
	t.Logf("StopPrivateIfUnused: %v", time.Since(start))
	for pid, name := range map[int]string{vsPID: vswitchd, dbPID: ovsdbServer} {
		if isDaemon(pid, name) {
			t.Errorf("%s pid %d still running", name, pid)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	t.Logf("left in run dir: %v", left)
	for _, f := range left {
		if b := filepath.Base(f); strings.HasSuffix(b, ".pid") || strings.HasSuffix(b, ".ctl") || b == dbSock {
			t.Errorf("%s left behind", f)
		}
	}
	for _, l := range []string{br, br2, foreign} {
		if linkExists(l) {
			t.Errorf("tap %s left after stop", l)
		}
	}
	if !netdevBefore && linkExists("ovs-netdev") {
		// Our vswitchd created it (it did not exist before): remove it.
		t.Errorf("ovs-netdev tap left after stop; deleting it")
		_ = exec.Command("ip", "link", "del", "ovs-netdev").Run()
	}
	if _, err := Connect(WithRunDir(dir), withSystemDBs()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Connect after stop = %v, want ErrNotRunning", err)
	}
	if stopped, err := c.StopPrivateIfUnused(); err == nil || stopped {
		t.Logf("StopPrivateIfUnused again = %v, %v", stopped, err)
	}
}

// TestObserveGoldenE2E regenerates testdata/observe.json from real output
// (NETLAB_OVS_GOLDEN=1), with the random names replaced by the stable ones
// TestParseObserve expects.
func TestObserveGoldenE2E(t *testing.T) {
	if os.Getenv("NETLAB_OVS_GOLDEN") != "1" {
		t.Skip("set NETLAB_OVS_GOLDEN=1 to regenerate testdata/observe.json")
	}
	c := privateClient(t)
	id := randHex(t, 2)
	lab, g0, g1 := "nltlab"+id, "nlt"+id+"g0", "nlt"+id+"g1"
	pa, pb, missing := "nlt"+id+"a", "nlt"+id+"b", "nlt"+id+"m"
	run(t, "ip", "link", "add", pa, "type", "veth", "peer", "name", pb)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", pa).Run() })
	run(t, "ip", "link", "set", pa, "up")
	run(t, "ip", "link", "set", pb, "up")
	if err := c.EnsureBridge(BridgeSpec{Name: g0, Lab: lab, Datapath: DatapathNetdev, FailMode: FailModeSecure}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(g0, lab) })
	if _, err := c.VSCtl("add-br", g1, "--", "set", "Bridge", g1, "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.VSCtl("--if-exists", "del-br", g1) })
	if err := c.EnsurePorts(g0, []PortSpec{{Name: pa, OFPort: 7, Lab: lab}}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePorts(g0, []PortSpec{{Name: missing, OFPort: 8, Lab: lab}}); err == nil {
		t.Fatal("missing device accepted")
	}
	out, err := c.VSCtl(observeArgs...)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, r := range [][2]string{{missing, "nltgB"}, {pa, "nltgA"}, {g0, "nltg0"}, {g1, "nltg1"}, {lab, "nltlab"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	if err := os.WriteFile(filepath.Join("testdata", "observe.json"), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePorts(g0, []string{pa, missing}); err != nil {
		t.Fatal(err)
	}
	t.Log("wrote testdata/observe.json")
}

// TestEnsureRunningConcurrentE2E: racing callers start one instance; a
// crashed ovs-vswitchd is restarted next to the surviving ovsdb-server.
func TestEnsureRunningConcurrentE2E(t *testing.T) {
	requireRoot(t)
	requireOVS(t)
	dir := testRunDir(t)
	waitNoVSwitchd(t)
	var wg sync.WaitGroup
	clients := make([]*Client, 4)
	errs := make([]error, 4)
	for i := range clients {
		wg.Go(func() {
			clients[i], errs[i] = EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	vsPID, ok1 := daemonPID(dir, vswitchd)
	dbPID, ok2 := daemonPID(dir, ovsdbServer)
	if !ok1 || !ok2 {
		t.Fatalf("not running: %v %v", ok1, ok2)
	}
	var n int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && isDaemon(pid, vswitchd) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d ovs-vswitchd processes, want 1", n)
	}

	// Crash ovs-vswitchd (our own, by PID): Connect says not running,
	// EnsureRunning starts only ovs-vswitchd again.
	if err := syscall.Kill(vsPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitGone(vsPID, vswitchd, 5*time.Second) {
		t.Fatal("killed ovs-vswitchd still running")
	}
	if _, err := Connect(WithRunDir(dir), withSystemDBs()); !errors.Is(err, ErrNotRunning) {
		pidfile, _ := os.ReadFile(filepath.Join(dir, vswitchd+".pid"))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", vsPID))
		t.Errorf("Connect with ovs-vswitchd dead = %v (killed pid %d; pidfile %q; its stat %q)", err, vsPID, pidfile, stat)
	}
	c, err := EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := daemonPID(dir, ovsdbServer); !ok || pid != dbPID {
		t.Errorf("ovsdb-server %d (running %v), want the same %d", pid, ok, dbPID)
	}
	if pid, ok := daemonPID(dir, vswitchd); !ok || pid == vsPID {
		t.Errorf("ovs-vswitchd %d (running %v) not restarted", pid, ok)
	}
	if stopped, err := c.StopPrivateIfUnused(); !stopped || err != nil {
		t.Fatalf("StopPrivateIfUnused = %v, %v", stopped, err)
	}
}

// A private database a killed run left empty or unreadable is made anew,
// with a warning, and the instance starts.
func TestPrivateInstanceBrokenDB(t *testing.T) {
	testkit.RequireRoot(t, "starts Open vSwitch")
	for _, content := range []string{"", "garbage, not a database\n"} {
		dir := testRunDir(t)
		if err := os.WriteFile(filepath.Join(dir, dbFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		waitNoVSwitchd(t)
		c, err := EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
		if err != nil {
			t.Fatalf("database %q: %v", content, err)
		}
		if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "made anew") {
			t.Errorf("database %q: warnings %q", content, w)
		}
		if _, err := c.VSCtl("show"); err != nil {
			t.Errorf("database %q: %v", content, err)
		}
		stopByPidfiles(t, dir)
	}
	// A sound one is kept, without a word.
	dir := testRunDir(t)
	waitNoVSwitchd(t)
	c, err := EnsureRunning(WithRunDir(dir), withSystemDBs(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("fresh instance warns: %q", w)
	}
}
