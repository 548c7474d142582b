package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// A namespace made by CreateNamespace is marked on lo, which is up, and has
// its sysctls, written where they differ and read back: observing it reads
// them from the run's knowledge, and the kernel agrees.
func TestCreateNamespace(t *testing.T) {
	requireRoot(t)
	hs := NewHandles()
	defer hs.Close()
	name := uniq(t)
	t.Cleanup(func() { namespace.Delete(name) })
	list := []Sysctl{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "0"}, // already so in a new namespace
		{"net.ipv4.conf.default.rp_filter", "2"},
	}
	n, err := hs.CreateNamespace(name, "lab1", list)
	must(t, err)
	got := observe(t, n, "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.default.rp_filter")
	lo := mustLink(t, got, "lo")
	if got.Owner != "lab1" || !lo.Up {
		t.Errorf("owner %q, lo up %v", got.Owner, lo.Up)
	}
	for _, sc := range list {
		if got.Sysctls[sc.Key] != sc.Value {
			t.Errorf("observed %s = %q, want %q", sc.Key, got.Sysctls[sc.Key], sc.Value)
		}
		// From the kernel itself, through a fresh handle.
		fresh, err := Open(name)
		must(t, err)
		v, err := fresh.Sysctl(sc.Key)
		fresh.Close()
		must(t, err)
		if v != sc.Value {
			t.Errorf("kernel says %s = %q, want %q", sc.Key, v, sc.Value)
		}
	}
	// A name taken: fs.ErrExist, and the namespace untouched.
	if _, err := hs.CreateNamespace(name, "lab2", nil); err == nil {
		t.Error("second CreateNamespace of a name succeeded")
	}
	if o := observe(t, n); o.Owner != "lab1" {
		t.Errorf("owner now %q", o.Owner)
	}
}

// MakeVeth gives both ends their final state: this end made with its MTU,
// MAC, master and up; the peer marked with its master and up in one request;
// offloads and addresses after. Observe shows exactly that.
func TestMakeVethFinalState(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	br := b.Name() + "br"
	must(t, b.AddBridge(br, "", 0))
	must(t, b.SetUp(br, true))
	an, bn := a.Name()+"a", b.Name()+"b"
	off, on := false, true
	master := br
	mac, _ := net.ParseMAC("02:00:00:00:aa:01")
	v := Veth{Name: an, Alias: "netlab:t:" + a.Name() + "/" + an, Peer: b, PeerName: bn, PeerAlias: "netlab:t:" + b.Name() + "/" + bn,
		End:     VethEnd{LinkState: LinkState{MTU: 1400, MAC: mac, Up: true}, TxChecksum: &off, Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8::1/64")}},
		PeerEnd: VethEnd{LinkState: LinkState{MTU: 1400, Master: &master, Up: true}, TxChecksum: &on}}
	must(t, a.MakeVeth(v))
	ga, gb := observe(t, a), observe(t, b)
	la, lb := mustLink(t, ga, an), mustLink(t, gb, bn)
	if la.Alias != v.Alias || !la.Up || la.MTU != 1400 || la.MAC.String() != mac.String() || la.TxChecksum == nil || *la.TxChecksum {
		t.Errorf("this end: %+v", la)
	}
	if !slices.Contains(la.Addrs, netip.MustParsePrefix("192.0.2.1/24")) || !slices.Contains(la.Addrs, netip.MustParsePrefix("2001:db8::1/64")) {
		t.Errorf("this end's addresses %v", la.Addrs)
	}
	if lb.Alias != v.PeerAlias || !lb.Up || lb.MTU != 1400 || lb.Master != br || lb.TxChecksum == nil || !*lb.TxChecksum {
		t.Errorf("peer: %+v", lb)
	}
	// A name taken: EEXIST, nothing left behind.
	if err := a.MakeVeth(Veth{Name: an, Peer: b, PeerName: bn + "x"}); err == nil {
		t.Error("a veth of a taken name was made")
	}
	if _, ok := observe(t, b).Links[bn+"x"]; ok {
		t.Error("the refused veth's peer exists")
	}
}

// A Handles keeps at most its bound of namespaces open: past it the oldest
// idle ones are closed, and used again they open again, with what the run
// learned of them (sysctls) kept.
func TestHandlesBound(t *testing.T) {
	requireRoot(t)
	hs := NewHandles()
	hs.maxOpen = 3
	defer hs.Close()
	var names []string
	for range 6 {
		name := uniq(t)
		t.Cleanup(func() { namespace.Delete(name) })
		_, err := hs.CreateNamespace(name, "lab1", []Sysctl{{"net.ipv4.ip_forward", "1"}})
		must(t, err)
		names = append(names, name)
	}
	open := 0
	for _, name := range names {
		n := hs.entry(name)
		n.mu.Lock()
		if n.fd.IsOpen() || n.sock != nil {
			open++
		}
		n.mu.Unlock()
	}
	if open > 3 {
		t.Errorf("%d namespaces open, bound 3", open)
	}
	for _, name := range names {
		n, err := hs.Get(name)
		must(t, err)
		got := observe(t, n, "net.ipv4.ip_forward")
		if got.Owner != "lab1" || got.Sysctls["net.ipv4.ip_forward"] != "1" {
			t.Errorf("%s after reopening: owner %q, ip_forward %q", name, got.Owner, got.Sysctls["net.ipv4.ip_forward"])
		}
	}
}

// Observe reads links, addresses and routes from its own dumps; netlink's
// Go code (what netlab used before, and `ip`'s view) reads the same.
func TestObserveAgreesWithNetlink(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	an, _ := vethPair(t, a, b)
	for _, p := range []string{"192.0.2.1/24", "198.51.100.7/32", "2001:db8::1/64", "fe80::1/64"} {
		must(t, a.AddrReplace(an, netip.MustParsePrefix(p)))
	}
	for _, r := range []state.Route{
		{To: netip.MustParsePrefix("203.0.113.0/24"), Via: netip.MustParseAddr("192.0.2.254")},
		{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("192.0.2.254"), Metric: 5},
		{To: netip.MustParsePrefix("2001:db8:1::/48"), Dev: an, Metric: 7},
	} {
		must(t, a.RouteReplace(r))
	}
	got := observe(t, a)
	h := testHandle(t, a)
	links, err := h.LinkList()
	must(t, err)
	if len(links) != len(got.Links) {
		t.Errorf("%d links observed, netlink lists %d", len(got.Links), len(links))
	}
	for _, l := range links {
		ol := mustLink(t, got, l.Attrs().Name)
		if ol.Index != l.Attrs().Index || ol.Kind != l.Type() || ol.MTU != l.Attrs().MTU || ol.Alias != l.Attrs().Alias {
			t.Errorf("link %s: observed %+v, netlink %+v", l.Attrs().Name, ol, l.Attrs())
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		must(t, err)
		var want []netip.Prefix
		for _, ad := range addrs {
			p, ok := prefixOf(ad.IPNet)
			if ok {
				want = append(want, p)
			}
		}
		slices.SortFunc(want, func(x, y netip.Prefix) int {
			return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
		})
		if fmt.Sprint(want) != fmt.Sprint(ol.Addrs) {
			t.Errorf("link %s: observed addresses %v, netlink %v", l.Attrs().Name, ol.Addrs, want)
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: state.RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	must(t, err)
	if len(routes) != len(got.Routes) || len(routes) != 3 {
		t.Errorf("observed routes %v; netlink lists %d", got.Routes, len(routes))
	}
	for _, r := range routes {
		metric := r.Priority
		if !slices.ContainsFunc(got.Routes, func(o state.Route) bool { return o.Metric == metric && o.To.Bits() == cmpBits(r) }) {
			t.Errorf("route %v (metric %d) not observed: %v", r.Dst, metric, got.Routes)
		}
	}
	// Indices learned by Observe serve a later request without a lookup.
	a.mu.Lock()
	idx := a.indices[an]
	a.mu.Unlock()
	if strconv.Itoa(int(idx)) != strconv.Itoa(mustLink(t, got, an).Index) {
		t.Errorf("index of %s learned as %d, observed %d", an, idx, mustLink(t, got, an).Index)
	}
}

func cmpBits(r netlink.Route) int {
	if r.Dst == nil {
		return 0
	}
	ones, _ := r.Dst.Mask.Size()
	return ones
}

// CreateNamespaces makes many namespaces, each marked with its sysctls;
// ReadOwners reads their markers (and none of an unmarked one, an error
// for one that is gone); Prepare opens them and reads their sysctls, so
// observing them needs no thread inside.
func TestCreateNamespacesOwnersPrepare(t *testing.T) {
	requireRoot(t)
	hs := NewHandles()
	defer hs.Close()
	var specs []NamespaceSpec
	for range 6 {
		name := uniq(t)
		t.Cleanup(func() { namespace.Delete(name) })
		specs = append(specs, NamespaceSpec{Name: name, Sysctls: []Sysctl{{"net.ipv4.ip_forward", "1"}}})
	}
	done := make([]error, len(specs))
	called := 0
	var mu sync.Mutex
	hs.CreateNamespaces(specs, "lab1", 2, func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		done[i] = err
		called++
	})
	if called != len(specs) {
		t.Errorf("done called %d times for %d namespaces", called, len(specs))
	}
	var names []string
	for i, sp := range specs {
		must(t, done[i])
		names = append(names, sp.Name)
	}
	bare := newNS(t).Name()
	absent := uniq(t)
	owners, errs := ReadOwners(append(names, bare, absent), 2)
	for i := range names {
		if owners[i] != "lab1" || errs[i] != nil {
			t.Errorf("%s: owner %q, %v", names[i], owners[i], errs[i])
		}
	}
	if owners[len(names)] != "" || errs[len(names)] != nil {
		t.Errorf("unmarked %s: owner %q, %v", bare, owners[len(names)], errs[len(names)])
	}
	if !errors.Is(errs[len(names)+1], fs.ErrNotExist) {
		t.Errorf("absent namespace: %v", errs[len(names)+1])
	}

	fresh := NewHandles()
	defer fresh.Close()
	keys := func(string) []string { return []string{"net.ipv4.ip_forward", "net.nosuch.key"} }
	for i, err := range fresh.Prepare(append(names, absent), keys, 2) {
		if i < len(names) && err != nil || i == len(names) && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Prepare %d: %v", i, err)
		}
	}
	for _, name := range names {
		n := fresh.entry(name)
		n.mu.Lock()
		v, open := n.sysctls["net.ipv4.ip_forward"], n.sock != nil
		n.mu.Unlock()
		if v != "1" || !open {
			t.Errorf("%s prepared: ip_forward %q, socket open %v", name, v, open)
		}
	}
}

// Namespaces made in one run start with the same sysctls: after the first,
// a key already at the wanted value is not opened, and every namespace
// still ends with the values asked for (read back by a fresh run). A key
// the run believes fresh namespaces hold is skipped even when it is
// wrong, which is how the skip is seen here; a later run reads the truth.
func TestFreshSysctls(t *testing.T) {
	requireRoot(t)
	hs := NewHandles()
	defer hs.Close()
	want := []Sysctl{{"net.ipv4.ip_forward", "0"}, {"net.ipv6.conf.default.accept_dad", "0"}, {"net.ipv4.ip_forward", "1"}}
	var specs []NamespaceSpec
	for range 4 {
		name := uniq(t)
		t.Cleanup(func() { namespace.Delete(name) })
		specs = append(specs, NamespaceSpec{Name: name, Sysctls: want})
	}
	hs.CreateNamespaces(specs, "lab1", 2, func(i int, err error) { must(t, err) })
	if _, ok := hs.fresh.m["net.ipv6.conf.default.accept_dad"]; !ok || len(hs.fresh.m) != 2 {
		t.Errorf("fresh values learned: %v, want ip_forward's and accept_dad's", hs.fresh.m)
	}
	check := NewHandles()
	defer check.Close()
	for _, sp := range specs {
		n := check.entry(sp.Name)
		for k, v := range map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.default.accept_dad": "0"} {
			got, err := n.Sysctl(k)
			must(t, err)
			if got != v {
				t.Errorf("%s: %s = %s, want %s", sp.Name, k, got, v)
			}
		}
	}

	// A belief that fresh namespaces forward: the key is not opened.
	lie := NewHandles()
	defer lie.Close()
	lie.fresh.learn("net.ipv4.ip_forward", "1")
	name := uniq(t)
	t.Cleanup(func() { namespace.Delete(name) })
	if _, err := lie.CreateNamespace(name, "lab1", []Sysctl{{"net.ipv4.ip_forward", "1"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := check.entry(name).Sysctl("net.ipv4.ip_forward"); err != nil || got != "0" {
		t.Errorf("ip_forward skipped as fresh: %q, %v; want the kernel's 0 untouched", got, err)
	}
}

// ownersByID reads the marker of every namespace this one has an id for
// (one linked to it by a veth, once described), more than a batch of them, and leaves to
// the caller one without an id and one whose file is no namespace;
// ReadOwners then reads those from inside.
func TestOwnersByID(t *testing.T) {
	requireRoot(t)
	host, err := Open("host")
	must(t, err)
	defer host.Close()
	var names []string
	const linked = ownersBatch + 6
	prefix := uniq(t) // one random name each would collide now and then
	for i := range linked {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		must(t, namespace.Create(name))
		t.Cleanup(func() { namespace.Delete(name) })
		n, err := Open(name)
		must(t, err)
		t.Cleanup(func() { n.Close() })
		if i%2 == 0 {
			must(t, n.MarkNamespace("lab2"))
		}
		must(t, n.AddVeth("v0", "", host, n.Name(), ""))
		t.Cleanup(func() { host.DeleteLink(n.Name()) })
		names = append(names, n.Name())
	}
	apart := newNS(t) // no link: no id here
	must(t, apart.MarkNamespace("lab2"))
	stale := uniq(t) // a file where a namespace would be, never mounted
	must(t, os.WriteFile(namespace.Path(stale), nil, 0o600))
	t.Cleanup(func() { os.Remove(namespace.Path(stale)) })
	absent := uniq(t)
	all := append(names, apart.Name(), stale, absent)
	// The kernel gives a linked namespace its id here when it first
	// describes a link to it (a dump of this namespace's links: up's
	// observation of the host, in netlab).
	observe(t, host)

	owners, errs := make([]string, len(all)), make([]error, len(all))
	rest, err := ownersByID(all, owners, errs, 2)
	must(t, err)
	if want := []int{linked, linked + 1}; !slices.Equal(rest, want) {
		t.Errorf("left to read from inside: %v, want %v", rest, want)
	}
	for i := range linked {
		want := map[bool]string{true: "lab2", false: ""}[i%2 == 0]
		if owners[i] != want || errs[i] != nil {
			t.Errorf("%s: owner %q, %v; want %q", all[i], owners[i], errs[i], want)
		}
	}
	if !errors.Is(errs[linked+2], fs.ErrNotExist) {
		t.Errorf("absent: %v", errs[linked+2])
	}

	owners, errs = ReadOwners(all, 2)
	if owners[linked] != "lab2" || errs[linked] != nil {
		t.Errorf("namespace without an id: owner %q, %v", owners[linked], errs[linked])
	}
	if errs[linked+1] == nil || errors.Is(errs[linked+1], fs.ErrNotExist) {
		t.Errorf("a file that is no namespace: %v, want an error of its own", errs[linked+1])
	}
	if owners[0] != "lab2" || owners[1] != "" || !errors.Is(errs[linked+2], fs.ErrNotExist) {
		t.Errorf("ReadOwners: %q %q %v", owners[0], owners[1], errs[linked+2])
	}
}

// Making and opening many more namespaces than a small limit of open files
// allows at once: the cache takes each chunk's files before the next
// opens more (before, 1,024 files stopped an up at the 516th namespace).
func TestManyNamespacesFewFiles(t *testing.T) {
	requireRoot(t)
	var lim unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
	low := lim
	low.Cur = FilesReserve + 100
	must(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &low))
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)

	hs := NewHandles()
	defer hs.Close()
	const n = 600
	var specs []NamespaceSpec
	var names []string
	prefix := uniq(t)
	for i := range n {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		specs = append(specs, NamespaceSpec{Name: name, Sysctls: []Sysctl{{"net.ipv4.ip_forward", "1"}}})
		names = append(names, name)
	}
	t.Cleanup(func() {
		for _, name := range names {
			namespace.Delete(name)
		}
	})
	var mu sync.Mutex
	var errs []error
	hs.CreateNamespaces(specs, "lab3", 2, func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	})
	if len(errs) > 0 {
		t.Fatalf("%d of %d namespaces not made with %d files: first %v", len(errs), n, low.Cur, errs[0])
	}
	fresh := NewHandles()
	defer fresh.Close()
	for i, err := range fresh.Prepare(names, func(string) []string { return []string{"net.ipv4.ip_forward"} }, 2) {
		if err != nil {
			t.Fatalf("Prepare %s with %d files: %v", names[i], low.Cur, err)
		}
	}
}

// A veth end made with NoIPv6 comes up with IPv6 disabled, on either side
// of the pair, and so gets no IPv6 address; an end without it has IPv6.
func TestMakeVethNoIPv6(t *testing.T) {
	requireRoot(t)
	hs := NewHandles()
	defer hs.Close()
	a, b := newNS(t), newNS(t)
	a, b = hs.entry(a.Name()), hs.entry(b.Name())
	for _, tc := range []struct {
		name, peer  string
		noA, noPeer bool
	}{
		{"n6a", "n6b", true, true},
		{"n6c", "n6d", false, true},
		{"n6e", "n6f", true, false},
	} {
		up := LinkState{Up: true}
		v := Veth{Name: tc.name, Alias: "netlab:test:a/" + tc.name, Peer: b, PeerName: tc.peer, PeerAlias: "netlab:test:b/" + tc.peer,
			End: VethEnd{LinkState: up, NoIPv6: tc.noA}, PeerEnd: VethEnd{LinkState: up, NoIPv6: tc.noPeer}}
		must(t, a.MakeVeth(v))
		for _, end := range []struct {
			n    *NS
			link string
			no   bool
		}{{a, tc.name, tc.noA}, {b, tc.peer, tc.noPeer}} {
			want := map[bool]string{true: "1", false: "0"}[end.no]
			got, err := end.n.Sysctl("net/ipv6/conf/" + end.link + "/disable_ipv6")
			must(t, err)
			l := mustLink(t, observe(t, end.n), end.link)
			if got != want || !l.Up {
				t.Errorf("%s: disable_ipv6 %s (want %s), up %v", end.link, got, want, l.Up)
			}
			if end.no && len(l.Addrs) > 0 {
				t.Errorf("%s without IPv6 has addresses %v", end.link, l.Addrs)
			}
		}
	}
}
