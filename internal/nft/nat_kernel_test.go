package nft

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

func sysctl(t *testing.T, ns, path, value string) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := namespace.Do(h, func() error {
		return os.WriteFile("/proc/sys/"+path, []byte(value), 0o644)
	}); err != nil {
		t.Fatalf("ns %s: sysctl %s=%s: %v", ns, path, value, err)
	}
}

// listen starts a TCP listener inside ns; every accepted connection's remote
// address is sent on the returned channel.
func listen(t *testing.T, ns, addr string) (string, <-chan netip.Addr) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var l net.Listener
	if err := namespace.Do(h, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("ns %s: listen %s: %v", ns, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	peers := make(chan netip.Addr, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			c.Close()
		}
	}()
	return l.Addr().String(), peers
}

// connect opens a TCP connection from inside ns.
func connect(ns, addr string) error {
	h, err := namespace.Open(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return namespace.Do(h, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// seenFrom connects from ns to addr and returns the source address the
// listener saw.
func seenFrom(t *testing.T, ns, addr string, peers <-chan netip.Addr) netip.Addr {
	t.Helper()
	if err := connect(ns, addr); err != nil {
		t.Fatalf("connect from %s to %s: %v", ns, addr, err)
	}
	select {
	case a := <-peers:
		return a
	case <-time.After(3 * time.Second):
		t.Fatalf("listener %s saw no connection", addr)
	}
	return netip.Addr{}
}

// lab is gw with veths to lan (10.0.0.0/24, fd00:10::/64) and inet
// (203.0.113.0/24, 2001:db8::/64), forwarding on in gw, no route back to
// the lan from inet.
type lab struct{ gw, lan, inet string }

func newLab(t *testing.T) lab {
	l := lab{gw: newNS(t), lan: newNS(t), inet: newNS(t)}
	run(t, "ip", "-n", l.gw, "link", "add", "lan0", "type", "veth", "peer", "name", "up0", "netns", l.lan)
	run(t, "ip", "-n", l.gw, "link", "add", "wan0", "type", "veth", "peer", "name", "down0", "netns", l.inet)
	for _, a := range [][]string{
		{l.gw, "lan0", "10.0.0.254/24"}, {l.gw, "lan0", "fd00:10::fe/64"},
		{l.gw, "wan0", "203.0.113.2/24"}, {l.gw, "wan0", "2001:db8::2/64"},
		{l.lan, "up0", "10.0.0.1/24"}, {l.lan, "up0", "fd00:10::1/64"},
		{l.inet, "down0", "203.0.113.1/24"}, {l.inet, "down0", "2001:db8::1/64"},
	} {
		args := []string{"ip", "-n", a[0], "addr", "add", a[2], "dev", a[1]}
		if strings.Contains(a[2], ":") {
			args = append(args, "nodad")
		}
		run(t, args...)
	}
	for _, d := range [][2]string{{l.gw, "lan0"}, {l.gw, "wan0"}, {l.lan, "up0"}, {l.inet, "down0"}} {
		run(t, "ip", "-n", d[0], "link", "set", d[1], "up")
	}
	run(t, "ip", "-n", l.lan, "route", "add", "default", "via", "10.0.0.254")
	run(t, "ip", "-n", l.lan, "-6", "route", "add", "default", "via", "fd00:10::fe")
	sysctl(t, l.gw, "net/ipv4/ip_forward", "1")
	sysctl(t, l.gw, "net/ipv6/conf/all/forwarding", "1")
	return l
}

const foreignTable = `table inet other {
	set s { type ipv4_addr; elements = { 198.51.100.7 }; }
	chain c { ip saddr @s counter accept; }
	chain post { type nat hook postrouting priority 50; policy accept; ip saddr 198.51.100.0/24 counter; }
}
`

func TestMasqueradeEndToEnd(t *testing.T) {
	requireRoot(t)
	l := newLab(t)
	const labName = "nat-e2e"
	nft(t, l.gw, foreignTable)
	foreign := nftList(t, l.gw, "table", "inet", "other")
	checkForeign := func(when string) {
		t.Helper()
		if got := nftList(t, l.gw, "table", "inet", "other"); got != foreign {
			t.Fatalf("%s: foreign table changed\n--- before\n%s--- after\n%s", when, foreign, got)
		}
	}

	if tbl, err := ObserveNAT(l.gw, labName); err != nil || tbl != nil {
		t.Fatalf("ObserveNAT before EnsureNAT: exists=%v err=%v", tbl != nil, err)
	}
	v4, peers4 := listen(t, l.inet, "203.0.113.1:0")
	v6, peers6 := listen(t, l.inet, "[2001:db8::1]:0")
	if err := connect(l.lan, v4); err == nil {
		t.Fatal("lan reached inet without NAT: inet has a route back?")
	}

	rules := []state.NATRule{rule("10.0.0.0/24", "wan0"), rule("fd00:10::/64", "wan0")}
	changed, err := EnsureNAT(l.gw, labName, rules)
	if err != nil || !changed {
		t.Fatalf("EnsureNAT: changed=%v err=%v", changed, err)
	}
	checkForeign("after first EnsureNAT")
	t.Logf("gw ruleset:\n%s", nftList(t, l.gw, "ruleset"))

	if got := seenFrom(t, l.lan, v4, peers4); got != netip.MustParseAddr("203.0.113.2") {
		t.Errorf("IPv4 connection seen from %s, want 203.0.113.2", got)
	}
	if got := seenFrom(t, l.lan, v6, peers6); got != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("IPv6 connection seen from %s, want 2001:db8::2", got)
	}

	// The lan stays unreachable from inet: masquerade is one-way.
	lanAddr, _ := listen(t, l.lan, "10.0.0.1:0")
	if err := connect(l.inet, lanAddr); err == nil {
		t.Error("inet connected to 10.0.0.1")
	}

	tbl, err := ObserveNAT(l.gw, labName)
	if err != nil || tbl == nil {
		t.Fatalf("ObserveNAT: ok=%v err=%v", tbl != nil, err)
	}
	if tbl.Foreign || !slices.Equal(ruleList(tbl), rules) {
		t.Fatalf("ObserveNAT = %+v, want rules %v", tbl, rules)
	}
	for _, r := range tbl.Rules {
		if r.Packets == 0 || r.Bytes == 0 {
			t.Errorf("rule %s %s: counter %d packets %d bytes, want > 0", r.Source, r.Out, r.Packets, r.Bytes)
		}
	}

	// Same rules: nothing sent, counters keep counting.
	changed, err = EnsureNAT(l.gw, labName, rules)
	if err != nil || changed {
		t.Fatalf("second EnsureNAT: changed=%v err=%v, want false", changed, err)
	}
	seenFrom(t, l.lan, v4, peers4)
	tbl2, err := ObserveNAT(l.gw, labName)
	if err != nil {
		t.Fatal(err)
	}
	if tbl2.Rules[0].Packets <= tbl.Rules[0].Packets || tbl2.Rules[1].Packets != tbl.Rules[1].Packets {
		t.Errorf("counters after no-op EnsureNAT: %+v, before %+v (want v4 grown, v6 unchanged)", tbl2.Rules, tbl.Rules)
	}
	checkForeign("after no-op EnsureNAT")

	// Another lab's table in the same namespace must survive our changes.
	if _, err := EnsureNAT(l.gw, "nat-e2e-other", []state.NATRule{rule("198.51.100.0/24", "wan0")}); err != nil {
		t.Fatal(err)
	}
	otherLab := nftList(t, l.gw, "table", "inet", state.NFTTable("nat-e2e-other"))

	// Changed prefix: exactly that rule differs.
	rules2 := []state.NATRule{rule("10.0.0.0/25", "wan0"), rules[1]}
	changed, err = EnsureNAT(l.gw, labName, rules2)
	if err != nil || !changed {
		t.Fatalf("EnsureNAT with new prefix: changed=%v err=%v", changed, err)
	}
	tbl3, err := ObserveNAT(l.gw, labName)
	if err != nil {
		t.Fatal(err)
	}
	got, before := ruleList(tbl3), ruleList(tbl)
	if !slices.Equal(got, rules2) || got[0] == before[0] || got[1] != before[1] {
		t.Errorf("after change: %v, want %v", got, rules2)
	}
	if a := seenFrom(t, l.lan, v4, peers4); a != netip.MustParseAddr("203.0.113.2") {
		t.Errorf("after change: seen from %s", a)
	}
	checkForeign("after changing EnsureNAT")

	if err := DeleteNAT(l.gw, labName); err != nil {
		t.Fatal(err)
	}
	if tbl, err := ObserveNAT(l.gw, labName); err != nil || tbl != nil {
		t.Fatalf("ObserveNAT after DeleteNAT: exists=%v err=%v", tbl != nil, err)
	}
	if err := DeleteNAT(l.gw, labName); err != nil {
		t.Fatalf("second DeleteNAT: %v", err)
	}
	checkForeign("after DeleteNAT")
	if got := nftList(t, l.gw, "table", "inet", state.NFTTable("nat-e2e-other")); got != otherLab {
		t.Errorf("other lab's table changed:\n%s\nwant\n%s", got, otherLab)
	}
	if err := connect(l.lan, v4); err == nil {
		t.Error("lan still reaches inet after DeleteNAT")
	}
}

// TestRenderMatchesEnsure applies RenderNAT's commands with nft and checks
// that EnsureNAT finds nothing to change: the plan text and the driver agree.
func TestRenderMatchesEnsure(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	rules := []state.NATRule{
		rule("10.0.0.0/24", "wan0"), rule("10.2.0.0/20", "wan1"), rule("10.1.2.3/32", "up-1"),
		rule("0.0.0.0/0", "wan1"), rule("fd00:10::/64", "wan0"), rule("2001:db8:8000::/33", "wan0"),
	}
	var script strings.Builder
	for _, c := range RenderNAT("render-check", rules) {
		script.WriteString(strings.TrimPrefix(c, "nft ") + "\n")
	}
	nft(t, ns, script.String())
	tbl, foreign := observeNAT(t, ns, "render-check")
	if tbl == nil {
		t.Fatalf("ObserveNAT: ok=false")
	}
	if tbl.Foreign || !slices.Equal(ruleList(tbl), rules) {
		t.Fatalf("nft-made table decodes to %+v (foreign %q), want %v\n%s", tbl, foreign, rules, nftList(t, ns, "ruleset"))
	}
	if changed, err := EnsureNAT(ns, "render-check", rules); err != nil || changed {
		t.Fatalf("EnsureNAT over nft-made table: changed=%v err=%v, want false", changed, err)
	}
	// And the other way: nft prints what EnsureNAT writes exactly as what it
	// made from RenderNAT's commands.
	byNft := nftList(t, ns, "table", "inet", state.NFTTable("render-check"))
	ns2 := newNS(t)
	if _, err := EnsureNAT(ns2, "render-check", rules); err != nil {
		t.Fatal(err)
	}
	if byEnsure := nftList(t, ns2, "table", "inet", state.NFTTable("render-check")); byEnsure != byNft {
		t.Errorf("nft lists EnsureNAT's table as\n%s\nand RenderNAT's as\n%s", byEnsure, byNft)
	}
}

// TestForeignContentIsReplaced: anything netlab did not write in its own
// table makes it differ, and EnsureNAT puts the table back.
func TestForeignContentIsReplaced(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	const labName = "nat-foreign"
	tn := state.NFTTable(labName)
	rules := []state.NATRule{rule("10.9.0.0/24", "wan0")}
	for name, script := range map[string]string{
		"extra rule":   "add rule inet " + tn + " postrouting counter",
		"set":          "add set inet " + tn + " s { type ipv4_addr; }",
		"extra chain":  "add chain inet " + tn + " other",
		"chain policy": "add chain inet " + tn + " postrouting { policy drop; }",
		"dormant":      "add table inet " + tn + " { flags dormant; }",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := EnsureNAT(ns, labName, rules); err != nil {
				t.Fatal(err)
			}
			nft(t, ns, script+"\n")
			tbl, foreign := observeNAT(t, ns, labName)
			if !tbl.Foreign || len(foreign) == 0 {
				t.Fatalf("ObserveNAT saw nothing foreign after %q: %+v\n%s", script, tbl, nftList(t, ns, "ruleset"))
			}
			t.Logf("foreign: %q", foreign)
			changed, err := EnsureNAT(ns, labName, rules)
			if err != nil || !changed {
				t.Fatalf("EnsureNAT: changed=%v err=%v, want true", changed, err)
			}
			tbl, err = ObserveNAT(ns, labName)
			if err != nil || tbl.Foreign || !slices.Equal(ruleList(tbl), rules) {
				t.Fatalf("after EnsureNAT: %+v err=%v", tbl, err)
			}
		})
	}
}

func TestForwardWarnings(t *testing.T) {
	requireRoot(t)
	sources := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00:10::/64")}

	clean := newNS(t)
	// An accepting forward chain and our own NAT table are no reason to warn.
	nft(t, clean, "table inet ok { chain forward_f { type filter hook forward priority 0; policy accept; }; }\n")
	if _, err := EnsureNAT(clean, "warn", []state.NATRule{rule("10.0.0.0/24", "wan0")}); err != nil {
		t.Fatal(err)
	}
	if w, err := ObserveForwardDrops(clean, sources); err != nil || len(w) != 0 {
		t.Fatalf("clean namespace: %q, %v", w, err)
	}

	ns := newNS(t)
	// The shape `iptables-nft -P FORWARD DROP` creates, plus an inet one.
	nft(t, ns, `table ip filter { chain FORWARD { type filter hook forward priority 0; policy drop; }; }
table inet fw { chain forward_f { type filter hook forward priority 10; policy drop; }; }
table bridge br { chain forward_f { type filter hook forward priority 0; policy drop; }; }
`)
	before := nftList(t, ns, "ruleset")
	w, err := ObserveForwardDrops(ns, sources)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"table ip filter chain FORWARD has policy drop: the lab's forwarded traffic from 10.0.0.0/24 will be dropped; to allow it: nft insert rule ip filter FORWARD ip saddr 10.0.0.0/24 accept (and the reply direction: ct state established,related accept)",
		"table inet fw chain forward_f has policy drop: the lab's forwarded traffic from 10.0.0.0/24 will be dropped; to allow it: nft insert rule inet fw forward_f ip saddr 10.0.0.0/24 accept (and the reply direction: ct state established,related accept)",
		"table inet fw chain forward_f has policy drop: the lab's forwarded traffic from fd00:10::/64 will be dropped; to allow it: nft insert rule inet fw forward_f ip6 saddr fd00:10::/64 accept (and the reply direction: ct state established,related accept)",
	}
	slices.Sort(w)
	slices.Sort(want)
	if !slices.Equal(w, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(want, "\n"))
	}
	if after := nftList(t, ns, "ruleset"); after != before {
		t.Errorf("ObserveForwardDrops changed the ruleset:\n%s\nwas\n%s", after, before)
	}
}

func TestErrorsNameTheNamespace(t *testing.T) {
	requireRoot(t)
	_, err := EnsureNAT("nln-absent", "x", nil)
	if err == nil || !strings.Contains(err.Error(), "nln-absent") {
		t.Errorf("EnsureNAT in a missing namespace: %v", err)
	}
	if _, err := EnsureNAT("nln-absent", "x", []state.NATRule{{Out: "wan0"}}); err == nil {
		t.Error("invalid rule accepted")
	}
}

// TestUndecodableExpressionIsForeign: nftables v0.3.0 drops expressions it
// cannot unmarshal (here rt) from GetRules; the driver's own reading of the
// rule must still see it and make the rule foreign.
func TestUndecodableExpressionIsForeign(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	r := rule("10.9.0.0/24", "wan0")
	if _, err := EnsureNAT(ns, "nat-rt", []state.NATRule{r}); err != nil {
		t.Fatal(err)
	}
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: state.NFTTable("nat-rt")}
	ex := natExprs(r)
	ex = append(ex[:len(ex)-2:len(ex)-2], append([]expr.Any{&expr.Rt{Register: 2, Key: expr.RtTCPMSS}}, ex[len(ex)-2:]...)...)
	c.AddRule(&nftables.Rule{Table: tb, Chain: &nftables.Chain{Name: natChain, Table: tb}, Exprs: ex})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nftList(t, ns, "ruleset"), "rt mtu") {
		t.Logf("listing: %s", nftList(t, ns, "ruleset"))
	}
	tbl, foreign := observeNAT(t, ns, "nat-rt")
	if len(tbl.Rules) != 1 || !tbl.Foreign || len(foreign) != 1 || !strings.Contains(foreign[0], "rt") {
		t.Fatalf("ObserveNAT = %+v (foreign %q), want one rule and one foreign rule naming rt", tbl, foreign)
	}
	if changed, err := EnsureNAT(ns, "nat-rt", []state.NATRule{r}); err != nil || !changed {
		t.Fatalf("EnsureNAT: changed=%v err=%v, want true", changed, err)
	}
}

// observeNAT reads the lab's NAT table in ns with the reasons it is
// foreign, which ObserveNAT sums up in Foreign; the table must exist.
func observeNAT(t *testing.T, ns, lab string) (*state.NATTable, []string) {
	t.Helper()
	c, err := dial(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	tbl, foreign, err := c.observeNAT(lab)
	if err != nil || tbl == nil {
		t.Fatalf("ns %s: observe NAT of %s: table %+v, err %v", ns, lab, tbl, err)
	}
	return tbl, foreign
}

// ruleList is an observed table's rules without their counters.
func ruleList(tbl *state.NATTable) []state.NATRule {
	rules := make([]state.NATRule, len(tbl.Rules))
	for i, r := range tbl.Rules {
		rules[i] = state.NATRule{Source: r.Source, Out: r.Out}
	}
	return rules
}
