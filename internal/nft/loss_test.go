package nft

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
	"golang.org/x/sys/unix"
)

// newVethNS makes a throwaway namespace with a veth pair v0 (here) and v1
// (in a second one), both up.
func newVethNS(t *testing.T) string {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, nftables", "nft")
	name := testkit.Name(t, "nli", 6)
	for _, n := range []string{name, name + "p"} {
		if err := namespace.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { namespace.Delete(n) })
	}
	run(t, "ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", name+"p")
	run(t, "ip", "-n", name, "link", "set", "v0", "up")
	run(t, "ip", "-n", name+"p", "link", "set", "v1", "up")
	return name
}

func TestLossTable(t *testing.T) {
	ns := newVethNS(t)
	if changed, err := EnsureLoss(ns, "lab-x", []state.LossRule{{Link: "v0", Percent: 20}}); err != nil || !changed {
		t.Fatalf("EnsureLoss: changed=%v err=%v", changed, err)
	}
	out := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "netdev", "netlab_lab_x")
	for _, want := range []string{`chain loss_v0 {`, `type filter hook egress device "v0" priority filter; policy accept;`, "numgen random mod 10000 < 2000 counter packets"} {
		if !strings.Contains(out, want) {
			t.Errorf("nft says (want %q):\n%s", want, out)
		}
	}
	lt, err := ObserveLoss(ns, "lab-x")
	if err != nil || lt == nil || lt.Foreign || lt.Loss["v0"] != 20 || len(lt.Loss) != 1 {
		t.Fatalf("observed %+v, %v", lt, err)
	}
	// The same rules again: nothing sent.
	if changed, err := EnsureLoss(ns, "lab-x", []state.LossRule{{Link: "v0", Percent: 20}}); err != nil || changed {
		t.Fatalf("second EnsureLoss: changed=%v err=%v, want false", changed, err)
	}
	// Something added by hand makes it foreign.
	run(t, "ip", "netns", "exec", ns, "nft", "add chain netdev netlab_lab_x extra")
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || !lt.Foreign {
		t.Fatalf("observed %+v, %v", lt, err)
	}
	if _, err := EnsureLoss(ns, "lab-x", []state.LossRule{{Link: "v0", Percent: 0}}); err != nil {
		t.Fatal(err)
	}
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || lt.Foreign || lt.Loss["v0"] != 0 {
		t.Fatalf("after replace: %+v, %v", lt, err)
	}
	for range 2 {
		if err := DeleteLoss(ns, "lab-x"); err != nil {
			t.Fatal(err)
		}
	}
	if lt, err = ObserveLoss(ns, "lab-x"); err != nil || lt != nil {
		t.Fatalf("after delete: %+v, %v", lt, err)
	}
}

// TestLossTextMatchesEnsure makes the table from the nft text of plan's
// set-loss action and checks that the driver reads it as its own, with
// nothing to change: the strict decoder accepts what nft compiles.
func TestLossTextMatchesEnsure(t *testing.T) {
	ns := newVethNS(t)
	tn := state.NFTTable("loss-text")
	nft(t, ns, "add table netdev "+tn+"\n"+
		"add chain netdev "+tn+" loss_v0 { type filter hook egress device \"v0\" priority 0; }\n"+
		"add rule netdev "+tn+" loss_v0 numgen random mod 10000 < 2000 counter drop\n")
	have, foreign := observeLoss(t, ns, "loss-text")
	if len(foreign) != 0 || !maps.Equal(have, map[string]uint32{"v0": 2000}) {
		t.Fatalf("nft-made table reads as %v (foreign %q)\n%s", have, foreign, nftList(t, ns, "ruleset"))
	}
	if changed, err := EnsureLoss(ns, "loss-text", []state.LossRule{{Link: "v0", Percent: 20}}); err != nil || changed {
		t.Fatalf("EnsureLoss over nft-made table: changed=%v err=%v, want false", changed, err)
	}
}

// TestLossForeignContentIsReplaced: anything netlab did not write in its
// loss table makes it foreign, and EnsureLoss puts the table back.
func TestLossForeignContentIsReplaced(t *testing.T) {
	ns := newVethNS(t)
	const labName = "loss-foreign"
	tn := state.NFTTable(labName)
	rules := []state.LossRule{{Link: "v0", Percent: 20}}
	reRule := "flush chain netdev " + tn + " loss_v0\nadd rule netdev " + tn + " loss_v0 "
	// loChain adds a chain for lo, with a loss rule, that differs from
	// netlab's only by its hook's spec.
	loChain := func(spec string) string {
		return "add chain netdev " + tn + " loss_lo { type filter hook egress " + spec + " }\n" +
			"add rule netdev " + tn + " loss_lo numgen random mod 10000 < 2000 counter drop"
	}
	for name, script := range map[string]string{
		"extra chain":    "add chain netdev " + tn + " extra",
		"set":            "add set netdev " + tn + " s { type ipv4_addr; }",
		"extra rule":     "add rule netdev " + tn + " loss_v0 counter",
		"other device":   loChain(`device "v0" priority 0;`),
		"other priority": loChain(`device "lo" priority 1;`),
		"chain comment":  loChain(`device "lo" priority 0; comment "mine";`),
		"chain policy":   "add chain netdev " + tn + " loss_v0 { policy drop; }",
		"dormant":        "add table netdev " + tn + " { flags dormant; }",
		"other modulus":  reRule + "numgen random mod 100 < 20 counter drop",
		"numgen inc":     reRule + "numgen inc mod 10000 < 2000 counter drop",
		"accept":         reRule + "numgen random mod 10000 < 2000 counter accept",
		"no counter":     reRule + "numgen random mod 10000 < 2000 drop",
		"comment":        reRule + `numgen random mod 10000 < 2000 counter drop comment "mine"`,
		"greater than":   reRule + "numgen random mod 10000 > 2000 counter drop",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := EnsureLoss(ns, labName, rules); err != nil {
				t.Fatal(err)
			}
			nft(t, ns, script+"\n")
			_, foreign := observeLoss(t, ns, labName)
			if len(foreign) == 0 {
				t.Fatalf("nothing foreign after %q:\n%s", script, nftList(t, ns, "table", "netdev", tn))
			}
			t.Logf("foreign: %q", foreign)
			if lt, err := ObserveLoss(ns, labName); err != nil || !lt.Foreign {
				t.Fatalf("ObserveLoss = %+v, %v; want Foreign", lt, err)
			}
			changed, err := EnsureLoss(ns, labName, rules)
			if err != nil || !changed {
				t.Fatalf("EnsureLoss: changed=%v err=%v, want true", changed, err)
			}
			have, foreign := observeLoss(t, ns, labName)
			if len(foreign) != 0 || !maps.Equal(have, map[string]uint32{"v0": 2000}) {
				t.Fatalf("after EnsureLoss: %v, foreign %q", have, foreign)
			}
		})
	}
}

// observeLoss reads the lab's loss table in ns with the reasons it is
// foreign, which ObserveLoss sums up in Foreign; the table must exist.
func observeLoss(t *testing.T, ns, lab string) (map[string]uint32, []string) {
	t.Helper()
	c, err := dial(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	have, foreign, err := c.observeLoss(lab)
	if err != nil || have == nil {
		t.Fatalf("ns %s: observe loss of %s: %v, err %v", ns, lab, have, err)
	}
	return have, foreign
}

func TestProbeLoss(t *testing.T) {
	requireRoot(t)
	if err := namespace.Scratch(ProbeLoss); err != nil {
		t.Errorf("nftables egress is on every kernel netlab supports: %v", err)
	}
}

func TestDecodeLossRoundTrip(t *testing.T) {
	full := lossExprs(1234)
	if th, err := decodeLoss(full); err != nil || th != 1234 {
		t.Errorf("full: %d %v", th, err)
	}
	read := wire(t, unix.NFPROTO_NETDEV, full) // as the driver reads it back
	if th, err := decodeLoss(read); err != nil || th != 1234 {
		t.Errorf("read back: %d %v", th, err)
	}
	if _, err := decodeLoss(full[:3]); err == nil {
		t.Error("a rule without its verdict decoded")
	}
	// google/nftables v0.3.0 alone reads the rule without its byteorder:
	// the driver reads it itself, and a rule without one is not netlab's.
	lib := append(append([]expr.Any{}, full[0]), full[2:]...)
	if _, err := decodeLoss(lib); !errors.Is(err, errNotOurs) {
		t.Errorf("a rule without byteorder: %v, want errNotOurs", err)
	}
}

func TestDecodeLossRejects(t *testing.T) {
	mod := func(f func([]expr.Any)) []expr.Any { e := lossExprs(2000); f(e); return e }
	numgen := func(typ, modulus, offset uint32) func([]expr.Any) {
		return func(e []expr.Any) { e[0] = &expr.Numgen{Register: 1, Modulus: modulus, Type: typ, Offset: offset} }
	}
	for name, ex := range map[string][]expr.Any{
		"empty":         nil,
		"numgen inc":    mod(numgen(unix.NFT_NG_INCREMENTAL, state.LossModulus, 0)),
		"modulus":       mod(numgen(unix.NFT_NG_RANDOM, 100, 0)),
		"offset":        mod(numgen(unix.NFT_NG_RANDOM, state.LossModulus, 1)),
		"ntoh":          mod(func(e []expr.Any) { e[1].(*expr.Byteorder).Op = expr.ByteorderNtoh }),
		"cmp gt":        mod(func(e []expr.Any) { e[2].(*expr.Cmp).Op = expr.CmpOpGt }),
		"over modulus":  mod(func(e []expr.Any) { e[2].(*expr.Cmp).Data = []byte{0, 0, 0x27, 0x11} }),
		"not a counter": mod(func(e []expr.Any) { e[3] = &expr.Masq{} }),
		"accept":        mod(func(e []expr.Any) { e[4] = &expr.Verdict{Kind: expr.VerdictAccept} }),
		"extra":         append(lossExprs(2000), &expr.Counter{}),
	} {
		if th, err := decodeLoss(ex); !errors.Is(err, errNotOurs) {
			t.Errorf("%s: decoded %d, err %v; want errNotOurs", name, th, err)
		}
	}
}
