package kernel

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"

	"github.com/vishvananda/netlink"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, netlink") }

// uniq returns "nlk" and 4 random hex digits: the prefix of every object a
// test creates.
func uniq(t *testing.T) string {
	t.Helper()
	return testkit.Name(t, "nlk", 4)
}

// newNS creates a throw-away namespace and opens it; both are undone when
// the test ends, whatever happens.
func newNS(t *testing.T) *NS {
	t.Helper()
	name := uniq(t)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// testHandle is the namespace's netlink.Handle, for a test's own requests.
func testHandle(t *testing.T, n *NS) *netlink.Handle {
	t.Helper()
	must(t, n.pin())
	defer n.unpin()
	h, err := n.handle()
	must(t, err)
	return h
}

func observe(t *testing.T, n *NS, keys ...string) *state.Namespace {
	t.Helper()
	s, err := n.Observe(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustLink(t *testing.T, s *state.Namespace, name string) *state.Link {
	t.Helper()
	l, ok := s.Links[name]
	if !ok {
		t.Fatalf("ns %s: no link %s (have %v)", s.Name, name, state.SortedNames(s.Links))
	}
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// vethPair makes a veth pair a0 (in a) – b0 (in b), both up, and returns
// their names.
func vethPair(t *testing.T, a, b *NS) (string, string) {
	t.Helper()
	an, bn := a.Name()+"a", b.Name()+"b"
	must(t, a.AddVeth(an, "netlab:test:"+a.Name()+"/"+an, b, bn, "netlab:test:"+b.Name()+"/"+bn))
	must(t, a.SetUp(an, true))
	must(t, b.SetUp(bn, true))
	return an, bn
}

func TestRetryDump(t *testing.T) {
	calls := 0
	v, err := RetryDump(func() (int, error) {
		calls++
		if calls < 3 {
			return -1, netlink.ErrDumpInterrupted // partial data
		}
		return 7, nil
	})
	if v != 7 || err != nil || calls != 3 {
		t.Errorf("got %d, %v after %d calls; want 7, nil after 3", v, err, calls)
	}

	calls = 0
	v, err = RetryDump(func() (int, error) { calls++; return -1, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != dumpAttempts || v != 0 {
		t.Errorf("always interrupted: got %d, %v after %d calls; want 0, ErrDumpInterrupted after %d", v, err, calls, dumpAttempts)
	}

	calls = 0
	other := errors.New("other")
	_, err = RetryDump(func() (int, error) { calls++; return 0, other })
	if !errors.Is(err, other) || calls != 1 {
		t.Errorf("other error: got %v after %d calls", err, calls)
	}
}

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":              "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.10/forwarding": "/proc/sys/net/ipv4/conf/eth0.10/forwarding",
		"net.ipv6.conf.all.disable_ipv6":   "/proc/sys/net/ipv6/conf/all/disable_ipv6",
		"../../etc/passwd":                 "",
		"net/../../etc":                    "",
		"":                                 "",
		"net//ipv4":                        "",
	} {
		got, err := sysctlPath(key)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestOpenHost(t *testing.T) {
	requireRoot(t)
	h, err := Open("host")
	must(t, err)
	defer h.Close()
	if h.Name() != "host" {
		t.Errorf("Name() = %q", h.Name())
	}
	s := observe(t, h) // read-only
	if _, ok := s.Links["lo"]; !ok {
		t.Error("host has no lo")
	}
	if _, err := Open("nlk-absent-zz"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of an absent namespace: %v", err)
	}
}

func TestMarkNamespace(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	s := observe(t, n)
	if s.Owner != "" || mustLink(t, s, "lo").Up {
		t.Fatalf("fresh namespace: owner %q, lo up %v", s.Owner, s.Links["lo"].Up)
	}
	must(t, n.MarkNamespace("blue"))
	s = observe(t, n)
	lo := mustLink(t, s, "lo")
	if s.Owner != "blue" || !lo.Up || lo.Alias != "netlab:blue" {
		t.Errorf("after mark: owner %q, lo %+v", s.Owner, lo)
	}
	if got, want := lo.LinkLayer, "link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00"; got != want {
		t.Errorf("lo LinkLayer %q, want %q", got, want)
	}
	if lo.Kind != "device" || lo.TxChecksum != nil {
		t.Errorf("lo: kind %q, TxChecksum %v", lo.Kind, lo.TxChecksum)
	}
}

func TestAddVethAcrossNamespaces(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	an, bn := vethPair(t, a, b)

	sa, sb := observe(t, a), observe(t, b)
	la, lb := mustLink(t, sa, an), mustLink(t, sb, bn)
	if _, ok := sa.Links[bn]; ok {
		t.Errorf("peer %s landed in %s, want %s", bn, a.Name(), b.Name())
	}
	if _, ok := sb.Links[an]; ok {
		t.Errorf("%s is in %s", an, b.Name())
	}
	if la.Kind != state.KindVeth || lb.Kind != state.KindVeth {
		t.Errorf("kinds %q %q", la.Kind, lb.Kind)
	}
	if la.Alias != "netlab:test:"+a.Name()+"/"+an || lb.Alias != "netlab:test:"+b.Name()+"/"+bn {
		t.Errorf("aliases %q %q", la.Alias, lb.Alias)
	}
	if la.Owner() != "test" || !la.Up || !lb.Up {
		t.Errorf("owner %q, up %v %v", la.Owner(), la.Up, lb.Up)
	}
	if !strings.HasPrefix(la.LinkLayer, "link/ether "+la.MAC.String()+" brd ff:ff:ff:ff:ff:ff") {
		t.Errorf("LinkLayer %q (MAC %s)", la.LinkLayer, la.MAC)
	}
	// Neither end is in the host namespace.
	host, err := Open("host")
	must(t, err)
	defer host.Close()
	for _, name := range []string{an, bn} {
		if _, err := host.link(name); !errors.Is(err, ErrLinkNotFound) {
			t.Errorf("%s visible in host: %v", name, err)
		}
	}

	err = a.AddVeth(an, "x", b, bn+"x", "y")
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "ns "+a.Name()+": add veth "+an) {
		t.Errorf("second AddVeth: %v", err)
	}

	must(t, a.DeleteLink(an))
	must(t, a.DeleteLink(an))
	must(t, b.DeleteLink(bn)) // went with its peer
	if _, ok := observe(t, b).Links[bn]; ok {
		t.Error("peer survived the deletion of its veth")
	}
}

func TestAddVethHostPeer(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	host, err := Open("host")
	must(t, err)
	t.Cleanup(func() { host.Close() })
	hn := n.Name() + "h"
	t.Cleanup(func() {
		if err := host.DeleteLink(hn); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	must(t, n.AddVeth("eth0", "netlab:test:"+n.Name()+"/eth0", host, hn, "netlab:test:host/"+hn))
	l, err := testHandle(t, host).LinkByName(hn)
	must(t, err)
	if l.Attrs().Alias != "netlab:test:host/"+hn || l.Type() != "veth" {
		t.Errorf("host end: alias %q type %q", l.Attrs().Alias, l.Type())
	}
	if _, err := n.link(hn); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("host end also visible in the namespace: %v", err)
	}
	must(t, host.DeleteLink(hn))
	if _, err := n.link("eth0"); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("namespace end survived: %v", err)
	}
}

func TestLinkSettersAndNotFound(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	an, bn := vethPair(t, n, n)
	mac, _ := net.ParseMAC("02:00:5e:10:00:01")
	must(t, n.SetMAC(an, mac))
	must(t, n.SetMTU(an, 1400))
	must(t, n.SetUp(bn, false))
	must(t, n.SetAlias(bn, "netlab:other:x/y"))
	s := observe(t, n)
	la, lb := mustLink(t, s, an), mustLink(t, s, bn)
	if la.MAC.String() != mac.String() || la.MTU != 1400 || lb.Up || lb.Owner() != "other" {
		t.Errorf("a %+v, b %+v", la, lb)
	}
	if la.LinkLayer != "link/ether 02:00:5e:10:00:01 brd ff:ff:ff:ff:ff:ff" {
		t.Errorf("LinkLayer %q", la.LinkLayer)
	}

	for what, err := range map[string]error{
		"SetUp":     n.SetUp("nlkabsent", true),
		"SetMAC":    n.SetMAC("nlkabsent", mac),
		"SetMTU":    n.SetMTU("nlkabsent", 1400),
		"SetAlias":  n.SetAlias("nlkabsent", ""),
		"SetMaster": n.SetMaster("nlkabsent", ""),
		"AddrRepl":  n.AddrReplace("nlkabsent", netip.MustParsePrefix("192.0.2.1/24")),
		"RouteRepl": n.RouteReplace(state.Route{To: netip.MustParsePrefix("192.0.2.0/24"), Dev: "nlkabsent"}),
		"TxCsum":    n.SetTxChecksum("nlkabsent", false),
	} {
		if !errors.Is(err, ErrLinkNotFound) || !strings.HasPrefix(err.Error(), "ns "+n.Name()+": ") {
			t.Errorf("%s on an absent link: %v", what, err)
		}
	}
	for what, err := range map[string]error{
		"DeleteLink": n.DeleteLink("nlkabsent"),
		"AddrDel":    n.AddrDel("nlkabsent", netip.MustParsePrefix("192.0.2.1/24")),
		"RouteDel":   n.RouteDel(state.Route{To: netip.MustParsePrefix("192.0.2.0/24"), Dev: "nlkabsent"}),
	} {
		if err != nil {
			t.Errorf("%s on an absent link: %v", what, err)
		}
	}
}

func TestAddrReplaceIdempotent(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	an, _ := vethPair(t, n, n)
	v4 := netip.MustParsePrefix("192.0.2.1/24")
	v6 := netip.MustParsePrefix("2001:db8::1/64")
	for range 2 {
		must(t, n.AddrReplace(an, v4))
		must(t, n.AddrReplace(an, v6))
	}
	if v4 != netip.MustParsePrefix("192.0.2.1/24") {
		t.Error("caller's prefix changed")
	}
	got := withoutLinkLocal(mustLink(t, observe(t, n), an).Addrs)
	if want := []netip.Prefix{v4, v6}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v (besides the kernel's link-local)", got, want)
	}
	must(t, n.AddrDel(an, v4))
	must(t, n.AddrDel(an, v4))
	must(t, n.AddrDel(an, v6))
	must(t, n.AddrDel(an, v6))
	if got := withoutLinkLocal(mustLink(t, observe(t, n), an).Addrs); len(got) != 0 {
		t.Errorf("addresses left: %v", got)
	}
}

// withoutLinkLocal drops the IPv6 link-local addresses the kernel gives a
// link when it comes up.
func withoutLinkLocal(in []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if !(p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			out = append(out, p)
		}
	}
	return out
}

func TestIPv6UsableImmediately(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	an, _ := vethPair(t, a, b) // both up: DAD would run now
	p := netip.MustParsePrefix("2001:db8:0:1::1/64")
	must(t, a.AddrReplace(an, p))
	// bind(2) right away: a tentative address would fail with EADDRNOTAVAIL.
	err := a.inside(func() error {
		c, err := net.ListenPacket("udp6", "["+p.Addr().String()+"]:0")
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatalf("bind to a fresh IPv6 address: %v", err)
	}
}

func TestPingBetweenNamespaces(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, netlink", "ip", "ping")
	a, b := newNS(t), newNS(t)
	an, bn := vethPair(t, a, b)
	for _, x := range []struct {
		n    *NS
		link string
		p    string
	}{
		{a, an, "192.0.2.1/24"}, {b, bn, "192.0.2.2/24"},
		{a, an, "2001:db8::1/64"}, {b, bn, "2001:db8::2/64"},
	} {
		must(t, x.n.AddrReplace(x.link, netip.MustParsePrefix(x.p)))
	}
	for _, dst := range []string{"192.0.2.2", "2001:db8::2"} {
		out, err := exec.Command("ip", "netns", "exec", a.Name(), "ping", "-c1", "-W1", dst).CombinedOutput()
		if err != nil {
			t.Errorf("ping %s from %s: %v\n%s", dst, a.Name(), err, out)
		}
	}
}

func TestRoutes(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	an, _ := vethPair(t, n, n)
	must(t, n.AddrReplace(an, netip.MustParsePrefix("192.0.2.1/24")))
	must(t, n.AddrReplace(an, netip.MustParsePrefix("2001:db8::1/64")))

	routes := []state.Route{
		{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.254")},
		{To: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("192.0.2.2"), Dev: an, Metric: 10},
		{To: netip.MustParsePrefix("203.0.113.0/24"), Dev: an, Metric: 20},
		{To: netip.MustParsePrefix("2001:db8:1::/64"), Via: netip.MustParseAddr("2001:db8::2"), Dev: an, Metric: 10},
	}
	for range 2 {
		for _, r := range routes {
			must(t, n.RouteReplace(r))
		}
	}
	want := slices.Clone(routes)
	want[0].Dev = an // resolved by the kernel
	got := observe(t, n).Routes
	if !slices.Equal(got, want) {
		t.Errorf("routes\n got %+v\nwant %+v", got, want)
	}
	// Kernel-made routes (192.0.2.0/24 proto kernel, fe80::/64, ...) are not netlab's.
	for _, r := range got {
		if r.To == netip.MustParsePrefix("192.0.2.0/24") || r.To.Addr().IsLinkLocalUnicast() {
			t.Errorf("kernel route observed: %+v", r)
		}
	}

	// A route that is not ours is never deleted, even when it matches.
	out, err := exec.Command("ip", "-n", n.Name(), "route", "add", "198.18.0.0/15", "dev", an).CombinedOutput()
	if err != nil {
		t.Fatalf("ip route add: %v\n%s", err, out)
	}
	must(t, n.RouteDel(state.Route{To: netip.MustParsePrefix("198.18.0.0/15"), Dev: an}))
	out, err = exec.Command("ip", "-n", n.Name(), "route", "show", "198.18.0.0/15").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "198.18.0.0/15") {
		t.Errorf("RouteDel removed a route that is not netlab's: %v %q", err, out)
	}

	for range 2 {
		for _, r := range routes {
			must(t, n.RouteDel(r))
		}
	}
	if got := observe(t, n).Routes; len(got) != 0 {
		t.Errorf("routes left: %+v", got)
	}
}

func TestSysctlPerNamespace(t *testing.T) {
	requireRoot(t)
	const fwd = "net.ipv4.ip_forward"
	hostBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	must(t, err)

	n := newNS(t)
	for _, v := range []string{"1", "0", "1"} {
		must(t, n.SetSysctl(fwd, v))
		got, err := n.Sysctl(fwd)
		must(t, err)
		if got != v {
			t.Errorf("after writing %s read %q", v, got)
		}
	}
	must(t, n.SetSysctl("net/ipv6/conf/all/forwarding", "1"))

	s := observe(t, n, fwd, "net.ipv6.conf.all.forwarding", "net.ipv4.nlk_no_such_key")
	if s.Sysctls[fwd] != "1" || s.Sysctls["net.ipv6.conf.all.forwarding"] != "1" {
		t.Errorf("observed sysctls %v", s.Sysctls)
	}
	if _, ok := s.Sysctls["net.ipv4.nlk_no_such_key"]; ok {
		t.Error("missing key present in the map")
	}
	if _, err := n.Sysctl("net.ipv4.nlk_no_such_key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: %v", err)
	}

	hostAfter, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	must(t, err)
	if string(hostBefore) != string(hostAfter) {
		t.Errorf("host ip_forward changed from %q to %q", hostBefore, hostAfter)
	}
}

func TestTxChecksum(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	an, bn := vethPair(t, n, n)
	for _, on := range []bool{false, true, false} {
		must(t, n.SetTxChecksum(an, on))
		got, err := n.TxChecksum(an)
		must(t, err)
		l := mustLink(t, observe(t, n), an)
		if got != on || l.TxChecksum == nil || *l.TxChecksum != on {
			t.Errorf("set %v: read %v, observed %v", on, got, l.TxChecksum)
		}
	}
	if l := mustLink(t, observe(t, n), bn); l.TxChecksum == nil || !*l.TxChecksum {
		t.Error("peer's tx checksumming changed too")
	}
	if path, err := exec.LookPath("ethtool"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", n.Name(), path, "-k", an).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "tx-checksumming: off") {
			t.Errorf("ethtool -k disagrees: %v\n%s", err, out)
		}
	}
}

func TestBridgeMaster(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	an, _ := vethPair(t, n, n)
	br := n.Name() + "br"
	const group = 0x4e4c0042
	must(t, n.AddBridge(br, "netlab:test:"+n.Name()+"/"+br, group))
	if err := n.AddBridge(br, "x", 0); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second AddBridge: %v", err)
	}
	if kl, err := testHandle(t, n).LinkByName(br); err != nil || kl.Attrs().Group != group {
		t.Errorf("bridge's group: %v %+v; want %#x", err, kl, group)
	}
	must(t, n.SetMaster(an, br))
	s := observe(t, n)
	if l := mustLink(t, s, an); l.Master != br {
		t.Errorf("master %q, want %q", l.Master, br)
	}
	if b := mustLink(t, s, br); b.Kind != state.KindBridge || b.Owner() != "test" {
		t.Errorf("bridge %+v", b)
	}
	if err := n.SetMaster(an, "nlkabsent"); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("absent bridge: %v", err)
	}
	must(t, n.SetMaster(an, ""))
	if l := mustLink(t, observe(t, n), an); l.Master != "" {
		t.Errorf("master %q after nomaster", l.Master)
	}
}

func TestTunLinkLayer(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testkit.SkipOrFail(t, "needs /dev/net/tun")
	}
	n := newNS(t)
	tun := n.Name() + "t"
	// TUN devices are made in the creating thread's namespace.
	err := n.inside(func() error {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = tun
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: attrs, Mode: netlink.TUNTAP_MODE_TUN})
	})
	must(t, err)
	l := mustLink(t, observe(t, n), tun)
	if l.LinkLayer != "link/none" || l.Kind != state.KindTuntap {
		t.Errorf("tun: LinkLayer %q, kind %q", l.LinkLayer, l.Kind)
	}
}

func TestWaitLink(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	start := time.Now()
	err := n.WaitLink("nlkabsent", 100*time.Millisecond)
	if !errors.Is(err, ErrLinkNotFound) || time.Since(start) > 2*time.Second {
		t.Errorf("absent link: %v after %v", err, time.Since(start))
	}
	br := n.Name() + "br"
	done := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		done <- n.AddBridge(br, "", 0)
	}()
	must(t, n.WaitLink(br, 5*time.Second))
	must(t, <-done)
}

func TestCloseReleasesNamespace(t *testing.T) {
	requireRoot(t)
	name := uniq(t)
	must(t, namespace.Create(name))
	t.Cleanup(func() { namespace.Delete(name) })
	n, err := Open(name)
	must(t, err)
	must(t, n.AddBridge(name+"br", "", 0))
	must(t, n.Close())
	must(t, namespace.Delete(name))
	if namespace.Exists(name) {
		t.Error("namespace still exists")
	}
}
