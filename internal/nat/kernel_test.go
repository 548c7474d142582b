package nat

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestMain runs the tests in a sandbox of their own (sandbox.RunTests) and
// checks that they left its host's ruleset exactly as they found it: every
// NAT in this package happens in throw-away namespaces.
func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(func() int {
		before, snap := hostRuleset()
		code := m.Run()
		if snap {
			if after, _ := hostRuleset(); after != before {
				fmt.Fprintf(os.Stderr, "host ruleset changed during the tests\n--- before\n%s--- after\n%s", before, after)
				code = 1
			}
		}
		return code
	}, false))
}

// hostRuleset returns `nft list ruleset` plus `iptables-save`/`ip6tables-save`
// where installed, counters dropped (host traffic moves them).
func hostRuleset() (string, bool) {
	if os.Geteuid() != 0 {
		return "", false
	}
	var b strings.Builder
	for _, argv := range [][]string{{"nft", "-s", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			continue
		}
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		fmt.Fprintf(&b, "## %s (err %v)\n", strings.Join(argv, " "), err)
		for _, l := range strings.SplitAfter(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // iptables-save timestamps
				b.WriteString(l)
			}
		}
	}
	return b.String(), true
}

// TestHostRulesetSnapshot makes the host check visible in the test list; the
// comparison itself runs in TestMain after every test.
func TestHostRulesetSnapshot(t *testing.T) {
	requireRoot(t)
	if _, ok := hostRuleset(); !ok {
		t.Fatal("no snapshot")
	}
}

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, nftables") }

// newNS creates a throw-away namespace "nln<hex>" deleted when the test ends.
func newNS(t *testing.T) string {
	t.Helper()
	name := testkit.Name(t, "nln", 6)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// run is testkit.Run.
func run(t *testing.T, argv ...string) string { t.Helper(); return testkit.Run(t, argv...) }

// nft runs `nft -f -` with script inside the namespace.
func nft(t *testing.T, ns, script string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ns %s: nft -f - <<%q: %v\n%s", ns, script, err, out)
	}
	return string(out)
}

func nftList(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns, "nft", "list"}, args...)...)
}

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

	if _, ok, err := Observe(l.gw, labName); err != nil || ok {
		t.Fatalf("Observe before Ensure: exists=%v err=%v", ok, err)
	}
	v4, peers4 := listen(t, l.inet, "203.0.113.1:0")
	v6, peers6 := listen(t, l.inet, "[2001:db8::1]:0")
	if err := connect(l.lan, v4); err == nil {
		t.Fatal("lan reached inet without NAT: inet has a route back?")
	}

	rules := []Rule{rule("10.0.0.0/24", "wan0"), rule("fd00:10::/64", "wan0")}
	changed, err := Ensure(l.gw, labName, rules)
	if err != nil || !changed {
		t.Fatalf("Ensure: changed=%v err=%v", changed, err)
	}
	checkForeign("after first Ensure")
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

	tbl, ok, err := Observe(l.gw, labName)
	if err != nil || !ok {
		t.Fatalf("Observe: ok=%v err=%v", ok, err)
	}
	if len(tbl.Foreign) != 0 || !slices.Equal(tbl.RuleList(), rules) {
		t.Fatalf("Observe = %+v, want rules %v", tbl, rules)
	}
	for _, r := range tbl.Rules {
		if r.Packets == 0 || r.Bytes == 0 {
			t.Errorf("rule %s: counter %d packets %d bytes, want > 0", r.Rule, r.Packets, r.Bytes)
		}
	}

	// Same rules: nothing sent, counters keep counting.
	changed, err = Ensure(l.gw, labName, rules)
	if err != nil || changed {
		t.Fatalf("second Ensure: changed=%v err=%v, want false", changed, err)
	}
	seenFrom(t, l.lan, v4, peers4)
	tbl2, _, err := Observe(l.gw, labName)
	if err != nil {
		t.Fatal(err)
	}
	if tbl2.Rules[0].Packets <= tbl.Rules[0].Packets || tbl2.Rules[1].Packets != tbl.Rules[1].Packets {
		t.Errorf("counters after no-op Ensure: %+v, before %+v (want v4 grown, v6 unchanged)", tbl2.Rules, tbl.Rules)
	}
	checkForeign("after no-op Ensure")

	// Another lab's table in the same namespace must survive our changes.
	if _, err := Ensure(l.gw, "nat-e2e-other", []Rule{rule("198.51.100.0/24", "wan0")}); err != nil {
		t.Fatal(err)
	}
	otherLab := nftList(t, l.gw, "table", "inet", TableName("nat-e2e-other"))

	// Changed prefix: exactly that rule differs.
	rules2 := []Rule{rule("10.0.0.0/25", "wan0"), rules[1]}
	changed, err = Ensure(l.gw, labName, rules2)
	if err != nil || !changed {
		t.Fatalf("Ensure with new prefix: changed=%v err=%v", changed, err)
	}
	tbl3, _, err := Observe(l.gw, labName)
	if err != nil {
		t.Fatal(err)
	}
	got := tbl3.RuleList()
	if !slices.Equal(got, rules2) || got[0] == tbl.Rules[0].Rule || got[1] != tbl.Rules[1].Rule {
		t.Errorf("after change: %v, want %v", got, rules2)
	}
	if a := seenFrom(t, l.lan, v4, peers4); a != netip.MustParseAddr("203.0.113.2") {
		t.Errorf("after change: seen from %s", a)
	}
	checkForeign("after changing Ensure")

	if err := Delete(l.gw, labName); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := Observe(l.gw, labName); err != nil || ok {
		t.Fatalf("Observe after Delete: exists=%v err=%v", ok, err)
	}
	if err := Delete(l.gw, labName); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	checkForeign("after Delete")
	if got := nftList(t, l.gw, "table", "inet", TableName("nat-e2e-other")); got != otherLab {
		t.Errorf("other lab's table changed:\n%s\nwant\n%s", got, otherLab)
	}
	if err := connect(l.lan, v4); err == nil {
		t.Error("lan still reaches inet after Delete")
	}
}

// TestRenderMatchesEnsure applies Render's commands with nft and checks that
// Ensure finds nothing to change: the plan text and the driver agree.
func TestRenderMatchesEnsure(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	rules := []Rule{
		rule("10.0.0.0/24", "wan0"), rule("10.2.0.0/20", "wan1"), rule("10.1.2.3/32", "up-1"),
		rule("0.0.0.0/0", "wan1"), rule("fd00:10::/64", "wan0"), rule("2001:db8:8000::/33", "wan0"),
	}
	var script strings.Builder
	for _, c := range Render("render-check", rules) {
		script.WriteString(strings.TrimPrefix(c, "nft ") + "\n")
	}
	nft(t, ns, script.String())
	tbl, ok, err := Observe(ns, "render-check")
	if err != nil || !ok {
		t.Fatalf("Observe: ok=%v err=%v", ok, err)
	}
	if len(tbl.Foreign) != 0 || !slices.Equal(tbl.RuleList(), rules) {
		t.Fatalf("nft-made table decodes to %+v, want %v\n%s", tbl, rules, nftList(t, ns, "ruleset"))
	}
	if changed, err := Ensure(ns, "render-check", rules); err != nil || changed {
		t.Fatalf("Ensure over nft-made table: changed=%v err=%v, want false", changed, err)
	}
	// And the other way: nft prints what Ensure writes exactly as what it
	// made from Render's commands.
	byNft := nftList(t, ns, "table", "inet", TableName("render-check"))
	ns2 := newNS(t)
	if _, err := Ensure(ns2, "render-check", rules); err != nil {
		t.Fatal(err)
	}
	if byEnsure := nftList(t, ns2, "table", "inet", TableName("render-check")); byEnsure != byNft {
		t.Errorf("nft lists Ensure's table as\n%s\nand Render's as\n%s", byEnsure, byNft)
	}
}

// TestForeignContentIsReplaced: anything netlab did not write in its own
// table makes it differ, and Ensure puts the table back.
func TestForeignContentIsReplaced(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	const labName = "nat-foreign"
	tn := TableName(labName)
	rules := []Rule{rule("10.9.0.0/24", "wan0")}
	for name, script := range map[string]string{
		"extra rule":   "add rule inet " + tn + " postrouting counter",
		"set":          "add set inet " + tn + " s { type ipv4_addr; }",
		"extra chain":  "add chain inet " + tn + " other",
		"chain policy": "add chain inet " + tn + " postrouting { policy drop; }",
		"dormant":      "add table inet " + tn + " { flags dormant; }",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Ensure(ns, labName, rules); err != nil {
				t.Fatal(err)
			}
			nft(t, ns, script+"\n")
			tbl, _, err := Observe(ns, labName)
			if err != nil {
				t.Fatal(err)
			}
			if len(tbl.Foreign) == 0 {
				t.Fatalf("Observe saw nothing foreign after %q: %+v\n%s", script, tbl, nftList(t, ns, "ruleset"))
			}
			t.Logf("foreign: %q", tbl.Foreign)
			changed, err := Ensure(ns, labName, rules)
			if err != nil || !changed {
				t.Fatalf("Ensure: changed=%v err=%v, want true", changed, err)
			}
			tbl, _, err = Observe(ns, labName)
			if err != nil || len(tbl.Foreign) != 0 || !slices.Equal(tbl.RuleList(), rules) {
				t.Fatalf("after Ensure: %+v err=%v", tbl, err)
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
	if _, err := Ensure(clean, "warn", []Rule{rule("10.0.0.0/24", "wan0")}); err != nil {
		t.Fatal(err)
	}
	if w, err := ForwardWarnings(clean, sources); err != nil || len(w) != 0 {
		t.Fatalf("clean namespace: %q, %v", w, err)
	}

	ns := newNS(t)
	// The shape `iptables-nft -P FORWARD DROP` creates, plus an inet one.
	nft(t, ns, `table ip filter { chain FORWARD { type filter hook forward priority 0; policy drop; }; }
table inet fw { chain forward_f { type filter hook forward priority 10; policy drop; }; }
table bridge br { chain forward_f { type filter hook forward priority 0; policy drop; }; }
`)
	before := nftList(t, ns, "ruleset")
	w, err := ForwardWarnings(ns, sources)
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
		t.Errorf("ForwardWarnings changed the ruleset:\n%s\nwas\n%s", after, before)
	}
}

func TestErrorsNameTheNamespace(t *testing.T) {
	requireRoot(t)
	_, err := Ensure("nln-absent", "x", nil)
	if err == nil || !strings.Contains(err.Error(), "nln-absent") {
		t.Errorf("Ensure in a missing namespace: %v", err)
	}
	if _, err := Ensure("nln-absent", "x", []Rule{{Out: "wan0"}}); err == nil {
		t.Error("invalid rule accepted")
	}
}

// TestUndecodableExpressionIsForeign: nftables v0.3.0 drops expressions it
// cannot unmarshal (here rt) from GetRules; the raw expression count must
// still make such a rule foreign.
func TestUndecodableExpressionIsForeign(t *testing.T) {
	requireRoot(t)
	ns := newNS(t)
	r := rule("10.9.0.0/24", "wan0")
	if _, err := Ensure(ns, "nat-rt", []Rule{r}); err != nil {
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
	tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName("nat-rt")}
	ex := buildExprs(r)
	ex = append(ex[:len(ex)-2:len(ex)-2], append([]expr.Any{&expr.Rt{Register: 2, Key: expr.RtTCPMSS}}, ex[len(ex)-2:]...)...)
	c.AddRule(&nftables.Rule{Table: tb, Chain: &nftables.Chain{Name: ChainName, Table: tb}, Exprs: ex})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(nftList(t, ns, "ruleset"), "rt mtu") {
		t.Logf("listing: %s", nftList(t, ns, "ruleset"))
	}
	tbl, _, err := Observe(ns, "nat-rt")
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Rules) != 1 || len(tbl.Foreign) != 1 || !strings.Contains(tbl.Foreign[0], "rt") {
		t.Fatalf("Observe = %+v, want one rule and one foreign rule naming rt", tbl)
	}
	if changed, err := Ensure(ns, "nat-rt", []Rule{r}); err != nil || !changed {
		t.Fatalf("Ensure: changed=%v err=%v, want true", changed, err)
	}
}
