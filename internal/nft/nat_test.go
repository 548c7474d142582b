package nft

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
)

func rule(src, out string) state.NATRule {
	return state.NATRule{Source: netip.MustParsePrefix(src), Out: out}
}

func TestRenderGolden(t *testing.T) {
	cases := map[string][]state.NATRule{
		"v4":    {rule("10.0.0.0/24", "wan0")},
		"v6":    {rule("fd00:10::/64", "wan0")},
		"mixed": {rule("10.0.0.0/24", "wan0"), rule("fd00:10::/64", "wan0"), rule("10.1.2.3/32", "up-1"), rule("0.0.0.0/0", "wan1"), rule("10.2.0.0/20", "wan1")},
		"empty": nil,
	}
	for name, rules := range cases {
		t.Run(name, func(t *testing.T) {
			got := strings.Join(RenderNAT("lab-"+name, rules), "\n") + "\n"
			path := filepath.Join("testdata", "render_"+name+".golden")
			testkit.Golden(t, path, []byte(got))
		})
	}
}

func TestRenderExample(t *testing.T) {
	// The exact text of the brief's example.
	got := RenderNAT("lab", []state.NATRule{rule("10.0.0.0/24", "wan0")})
	want := []string{
		"nft add table inet netlab_lab",
		"nft add chain inet netlab_lab postrouting { type nat hook postrouting priority srcnat; }",
		`nft add rule inet netlab_lab postrouting meta nfproto ipv4 ip saddr 10.0.0.0/24 oifname "wan0" counter masquerade`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuildDecodeRoundTrip(t *testing.T) {
	for _, r := range []state.NATRule{
		rule("10.0.0.0/24", "wan0"),
		rule("10.0.0.0/20", "wan0"),
		rule("10.0.0.7/32", "x"),
		rule("0.0.0.0/0", "wan0"),
		rule("fd00:10::/64", "uplink-012345"),
		rule("2001:db8::/33", "wan0"),
		rule("2001:db8::1/128", "wan0"),
		rule("::/0", "wan0"),
		rule("128.0.0.0/1", "wan0"),
	} {
		rs, err := decodeNAT(natExprs(r))
		if err != nil {
			t.Errorf("%s: %v", r, err)
			continue
		}
		if got := (state.NATRule{Source: rs.Source, Out: rs.Out}); got != r {
			t.Errorf("decoded %s, want %s", got, r)
		}
		// And as the driver reads it back from the kernel.
		if rs, err := decodeNAT(wire(t, unix.NFPROTO_INET, natExprs(r))); err != nil || rs.Source != r.Source || rs.Out != r.Out {
			t.Errorf("%s read back: %+v, %v", r, rs, err)
		}
	}
}

func TestBuildExprsShape(t *testing.T) {
	ex := natExprs(rule("fd00:10::/64", "wan0"))
	p := ex[2].(*expr.Payload)
	if p.Offset != 8 || p.Len != 16 || p.Base != expr.PayloadBaseNetworkHeader {
		t.Errorf("ip6 saddr payload = %+v, want offset 8 len 16 network header", p)
	}
	b := ex[3].(*expr.Bitwise)
	if got := b.Mask; string(got) != string(append(make([]byte, 0), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0)) {
		t.Errorf("mask = %x", got)
	}
	ex = natExprs(rule("10.0.0.0/24", "wan0"))
	if p := ex[2].(*expr.Payload); p.Offset != 12 || p.Len != 4 {
		t.Errorf("ip saddr payload = %+v, want offset 12 len 4", p)
	}
	if c := ex[6].(*expr.Cmp); len(c.Data) != 16 || string(c.Data[:5]) != "wan0\x00" {
		t.Errorf("oifname cmp = %q, want 16 NUL-padded bytes", c.Data)
	}
	if len(natExprs(rule("10.0.0.1/32", "wan0"))) != 8 {
		t.Error("/32 should have no bitwise")
	}
	if len(natExprs(rule("0.0.0.0/0", "wan0"))) != 6 {
		t.Error("/0 should have no address match")
	}
}

// nftStyle is how nft 1.0.6 compiles `meta nfproto ipv4 ip saddr 10.0.0.0/24
// oifname "wan0" counter masquerade`: only the 3 bytes a /24 needs.
func nftStyle() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 3},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 0, 0}},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifName("wan0")},
		&expr.Counter{Packets: 3, Bytes: 180},
		&expr.Masq{},
	}
}

func TestDecodeNftStyle(t *testing.T) {
	rs, err := decodeNAT(nftStyle())
	if err != nil {
		t.Fatal(err)
	}
	want := state.NATRuleStats{NATRule: state.NATRule{Source: netip.MustParsePrefix("10.0.0.0/24"), Out: "wan0"}, Packets: 3, Bytes: 180}
	if rs != want {
		t.Errorf("got %+v, want %+v", rs, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	mod := func(f func([]expr.Any) []expr.Any) []expr.Any { return f(nftStyle()) }
	cases := map[string][]expr.Any{
		"empty":         nil,
		"extra verdict": mod(func(e []expr.Any) []expr.Any { return append(e, &expr.Verdict{Kind: expr.VerdictAccept}) }),
		"no counter":    mod(func(e []expr.Any) []expr.Any { return append(e[:6], e[7]) }),
		"masq random":   mod(func(e []expr.Any) []expr.Any { e[7] = &expr.Masq{Random: true}; return e }),
		"snat not masq": mod(func(e []expr.Any) []expr.Any { e[7] = &expr.NAT{Type: expr.NATTypeSourceNAT}; return e }),
		"wildcard oif":  mod(func(e []expr.Any) []expr.Any { e[5] = &expr.Cmp{Register: 1, Data: []byte("wan")}; return e }),
		"cmp neq": mod(func(e []expr.Any) []expr.Any {
			e[3] = &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 0, 0}}
			return e
		}),
		"daddr":           mod(func(e []expr.Any) []expr.Any { e[2] = &expr.Payload{DestRegister: 1, Offset: 16, Len: 3}; return e }),
		"nfproto arp":     mod(func(e []expr.Any) []expr.Any { e[1] = &expr.Cmp{Register: 1, Data: []byte{unix.NFPROTO_ARP}}; return e }),
		"iifname":         mod(func(e []expr.Any) []expr.Any { e[4] = &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}; return e }),
		"reordered":       mod(func(e []expr.Any) []expr.Any { e[6], e[7] = e[7], e[6]; return e }),
		"bits past mask":  {&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{2}}, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: make([]byte, 4)}, &expr.Cmp{Register: 1, Data: []byte{10, 0, 0, 1}}, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Register: 1, Data: ifName("wan0")}, &expr.Counter{}, &expr.Masq{}},
		"holey mask":      {&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{2}}, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 255, 0}, Xor: make([]byte, 4)}, &expr.Cmp{Register: 1, Data: []byte{10, 0, 0, 0}}, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Register: 1, Data: ifName("wan0")}, &expr.Counter{}, &expr.Masq{}},
		"v6 at v4 offset": {&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{10}}, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, &expr.Cmp{Register: 1, Data: []byte{10, 0, 0, 0}}, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Register: 1, Data: ifName("wan0")}, &expr.Counter{}, &expr.Masq{}},
	}
	for name, ex := range cases {
		if rs, err := decodeNAT(ex); !errors.Is(err, errNotOurs) {
			t.Errorf("%s: decoded %+v, err %v; want errNotOurs", name, rs, err)
		}
	}
}

func TestMaskBits(t *testing.T) {
	for _, c := range []struct {
		m    []byte
		want int
	}{
		{[]byte{0xff, 0xff, 0xff, 0}, 24},
		{[]byte{0xff, 0xf0, 0, 0}, 12},
		{[]byte{0x80, 0, 0, 0}, 1},
		{[]byte{0, 0, 0, 0}, 0},
		{[]byte{0xff, 0xff, 0xff, 0xff}, 32},
		{[]byte{0xff, 0x0f, 0, 0}, -1},
		{[]byte{0xf0, 0xff, 0, 0}, -1},
		{[]byte{0xff, 0, 0, 1}, -1},
	} {
		if got := maskBits(c.m); got != c.want {
			t.Errorf("maskBits(%x) = %d, want %d", c.m, got, c.want)
		}
		if c.want >= 0 {
			if got := prefixMask(c.want, len(c.m)); string(got) != string(c.m) {
				t.Errorf("prefixMask(%d) = %x, want %x", c.want, got, c.m)
			}
		}
	}
}

func TestCheckNATRule(t *testing.T) {
	bad := []state.NATRule{
		{Out: "wan0"},
		rule("10.0.0.0/24", ""),
		rule("10.0.0.0/24", "0123456789abcdef"),
		rule("10.0.0.0/24", "wan*"),
		rule("10.0.0.0/24", `a"b`),
	}
	for _, r := range bad {
		if checkNATRule(r) == nil {
			t.Errorf("checkNATRule(%+v) = nil, want error", r)
		}
	}
	if err := checkNATRule(rule("10.0.0.0/24", "0123456789abcde")); err != nil {
		t.Errorf("15-byte name: %v", err)
	}
}
