package nft

import (
	"bytes"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/netlab-dev/netlab/internal/state"
	"golang.org/x/sys/unix"
)

// The lab's NAT table in a namespace is `inet netlab_<lab>`: one chain,
// postrouting (type nat, priority srcnat), holding one counted masquerade
// rule per source prefix and uplink.

// natChain is the name of the NAT table's only chain.
const natChain = "postrouting"

// ifNameSize is the kernel's IFNAMSIZ: interface names are at most 15 bytes
// plus a NUL, and `oifname` compares all 16 bytes.
const ifNameSize = 16

// reg is the register every expression of a NAT rule uses: NFT_REG_1, the
// 16-byte register nft itself uses (an IPv6 address needs 16 bytes).
const reg = unix.NFT_REG_1

// Source address offsets in the network header: IPv4 saddr is bytes 12-15,
// IPv6 saddr bytes 8-23.
const (
	ip4SaddrOffset = 12
	ip6SaddrOffset = 8
)

// checkNATRule rejects what the kernel could not match exactly: an invalid
// prefix, or an interface name that is empty, too long or not a plain name.
func checkNATRule(r state.NATRule) error {
	if !r.Source.IsValid() {
		return fmt.Errorf("rule %q: invalid source prefix", r.Out)
	}
	if r.Out == "" || len(r.Out) >= ifNameSize {
		return fmt.Errorf("rule %s: output interface %q: want 1 to %d bytes", r.Source, r.Out, ifNameSize-1)
	}
	if strings.ContainsAny(r.Out, "/\"\\* \t\n\x00") {
		return fmt.Errorf("rule %s: output interface %q: invalid character", r.Source, r.Out)
	}
	return nil
}

// normalize returns r with its prefix masked (10.0.0.1/24 → 10.0.0.0/24) and
// an IPv4-mapped IPv6 prefix left as IPv6: that is what the kernel compares,
// and what ObserveNAT reads back.
func normalize(r state.NATRule) state.NATRule {
	r.Source = r.Source.Masked()
	return r
}

// family names a prefix's nft family: "ipv4"/"ip" or "ipv6"/"ip6".
func family(p netip.Prefix) (nfproto, payload string) {
	if p.Addr().Is4() {
		return "ipv4", "ip"
	}
	return "ipv6", "ip6"
}

// ruleText is a rule's body in nft syntax, e.g.
// `meta nfproto ipv4 ip saddr 10.0.0.0/24 oifname "wan0" counter masquerade`.
func ruleText(r state.NATRule) string {
	r = normalize(r)
	nfproto, pl := family(r.Source)
	var b strings.Builder
	b.WriteString("meta nfproto " + nfproto)
	if r.Source.Bits() > 0 {
		b.WriteString(" " + pl + " saddr " + r.Source.String())
	}
	b.WriteString(` oifname "` + r.Out + `" counter masquerade`)
	return b.String()
}

// RenderNAT returns the nft commands equivalent to EnsureNAT(ns, lab,
// rules), one per line. EnsureNAT applies them atomically, after deleting
// any previous version of the table in the same batch.
//
// The chain line is nft syntax: in a shell, quote it (the ';' would end the
// command); `nft -f` takes the lines without the leading "nft ".
func RenderNAT(lab string, rules []state.NATRule) []string {
	t := state.NFTTable(lab)
	out := []string{
		"nft add table inet " + t,
		"nft add chain inet " + t + " " + natChain + " { type nat hook postrouting priority srcnat; }",
	}
	for _, r := range rules {
		out = append(out, "nft add rule inet "+t+" "+natChain+" "+ruleText(r))
	}
	return out
}

// ObserveNAT reads the lab's NAT table in the namespace (nsName "host" is
// the root namespace): its rules with their counters; nil if there is no
// such table. Anything in it netlab does not write makes it Foreign.
//
// Equivalent to: `ip netns exec NS nft list table inet netlab_LAB`.
func ObserveNAT(nsName, lab string) (*state.NATTable, error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	t, _, err := c.observeNAT(lab)
	return t, err
}

// observeNAT reads the lab's NAT table and says what in it is foreign.
func (c *conn) observeNAT(lab string) (*state.NATTable, []string, error) {
	name := state.NFTTable(lab)
	ct, err := c.observe(nftables.TableFamilyINet, name, isNATChain)
	if err != nil {
		return nil, nil, fmt.Errorf("ns %s: observe table inet %s: %w", c.ns, name, err)
	}
	if ct == nil {
		return nil, nil, nil
	}
	out := &state.NATTable{}
	foreign := ct.foreign
	if len(ct.chains) == 0 {
		foreign = append(foreign, "no chain "+natChain+" (type nat hook postrouting priority srcnat)")
	}
	for _, ch := range ct.chains {
		for _, r := range ch.rules {
			exprs, err := r.decoded()
			var rs state.NATRuleStats
			if err == nil {
				rs, err = decodeNAT(exprs)
			}
			if err != nil {
				foreign = append(foreign, r.describe(err))
				continue
			}
			out.Rules = append(out.Rules, rs)
		}
	}
	out.Foreign = len(foreign) > 0
	return out, foreign, nil
}

// isNATChain reports whether ch is the chain EnsureNAT creates.
func isNATChain(ch *kernelChain) bool {
	return ch.name == natChain &&
		ch.isBase(nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, nil)
}

// sameNAT reports whether the observed rules are want, in order.
func sameNAT(have []state.NATRuleStats, want []state.NATRule) bool {
	return slices.EqualFunc(have, want, func(h state.NATRuleStats, w state.NATRule) bool { return h.NATRule == w })
}

// EnsureNAT makes the lab's NAT table in the namespace hold exactly rules,
// in order: one `inet` table netlab_<lab> with one chain (type nat, hook
// postrouting, priority srcnat) and one counted masquerade rule per state.NATRule.
//
// If the table already holds exactly these rules, nothing is sent and the
// counters keep counting (changed=false). Otherwise the table is replaced in
// one netlink batch — add table, delete table, add table, chain and rules —
// which the kernel commits as one transaction: there is no moment without
// NAT, and nothing outside the table is touched. (Counters restart on a
// change.)
//
// Equivalent to: `nft -f -` with "table inet T {}; delete table inet T" and
// the commands of RenderNAT.
func EnsureNAT(nsName, lab string, rules []state.NATRule) (changed bool, err error) {
	name := state.NFTTable(lab)
	want := make([]state.NATRule, len(rules))
	for i, r := range rules {
		if err := checkNATRule(r); err != nil {
			return false, fmt.Errorf("ns %s: table inet %s: %w", nsName, name, err)
		}
		want[i] = normalize(r)
	}
	c, err := dial(nsName)
	if err != nil {
		return false, err
	}
	defer c.close()
	cur, _, err := c.observeNAT(lab)
	if err != nil {
		return false, err
	}
	if cur != nil && !cur.Foreign && sameNAT(cur.Rules, want) {
		return false, nil
	}

	t := c.replaceTable(nftables.TableFamilyINet, name)
	ch := c.nft.AddChain(&nftables.Chain{
		Name:     natChain,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	for _, r := range want {
		c.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: natExprs(r)})
	}
	if err := c.nft.Flush(); err != nil {
		return false, fmt.Errorf("ns %s: replace table inet %s: %w", nsName, name, err)
	}
	return true, nil
}

// DeleteNAT drops the lab's NAT table and everything in it; it returns nil
// if the table does not exist.
//
// Equivalent to: `nft delete table inet netlab_LAB` (when it exists).
func DeleteNAT(nsName, lab string) error {
	c, err := dial(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	return c.deleteTable(nftables.TableFamilyINet, state.NFTTable(lab))
}

// natExprs returns the expressions of one masquerade rule, in the order
// nft compiles `meta nfproto ipv4 ip saddr 10.0.0.0/24 oifname "wan0"
// counter masquerade`:
//
//	meta load nfproto => reg 1; cmp eq reg 1 0x02
//	payload load 4b @ network header + 12 => reg 1
//	bitwise reg 1 = (reg 1 & 0xffffff00) ^ 0   (not for a full-length prefix)
//	cmp eq reg 1 10.0.0.0
//	meta load oifname => reg 1; cmp eq reg 1 "wan0\0\0..." (16 bytes)
//	counter; masq
//
// The address family must be matched first: in an inet table the same
// offset means different fields in IPv4 and IPv6. A /0 prefix has no
// address match at all.
func natExprs(r state.NATRule) []expr.Any {
	r = normalize(r)
	addr := r.Source.Addr()
	proto, off := byte(unix.NFPROTO_IPV4), uint32(ip4SaddrOffset)
	if !addr.Is4() {
		proto, off = unix.NFPROTO_IPV6, ip6SaddrOffset
	}
	raw := addr.AsSlice()
	n := uint32(len(raw))

	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
	}
	if r.Source.Bits() > 0 {
		exprs = append(exprs, &expr.Payload{
			OperationType: expr.PayloadLoad, DestRegister: reg,
			Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n,
		})
		if r.Source.Bits() < addr.BitLen() {
			exprs = append(exprs, &expr.Bitwise{
				SourceRegister: reg, DestRegister: reg, Len: n,
				Mask: prefixMask(r.Source.Bits(), int(n)), Xor: make([]byte, n),
			})
		}
		exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: raw})
	}
	return append(exprs,
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: ifName(r.Out)},
		&expr.Counter{},
		&expr.Masq{},
	)
}

// ifName returns name NUL-padded to IFNAMSIZ, as the kernel stores it; a
// shorter comparison would be a prefix match (nft's "wan*").
func ifName(name string) []byte {
	b := make([]byte, ifNameSize)
	copy(b, name)
	return b
}

// prefixMask returns a size-byte mask with the first ones bits set.
func prefixMask(ones, size int) []byte {
	m := make([]byte, size)
	for i := range m {
		switch {
		case ones >= 8:
			m[i] = 0xff
			ones -= 8
		case ones > 0:
			m[i] = byte(0xff << (8 - ones))
			ones = 0
		}
	}
	return m
}

// maskBits returns the number of leading one bits of a contiguous prefix
// mask, or -1 if the mask is not contiguous.
func maskBits(m []byte) int {
	n := 0
	for i, b := range m {
		if b == 0xff {
			n += 8
			continue
		}
		ones := bits.LeadingZeros8(^b)
		if byte(0xff<<(8-ones)) != b {
			return -1
		}
		for _, rest := range m[i+1:] {
			if rest != 0 {
				return -1
			}
		}
		return n + ones
	}
	return n
}

// decodeNAT reads back a rule built by natExprs. It also accepts nft's own
// compilation of the same rule text (nft loads only the bytes a
// byte-aligned prefix needs, e.g. 3 bytes and no bitwise for a /24), so a
// table made from RenderNAT's commands decodes to the same rules. Anything
// else — other expressions, other order, flags on masq, a wildcard
// interface — is an error wrapping errNotOurs.
func decodeNAT(exprs []expr.Any) (state.NATRuleStats, error) {
	var rs state.NATRuleStats
	fail := func(format string, args ...any) (state.NATRuleStats, error) {
		return state.NATRuleStats{}, fmt.Errorf("%w: "+format, append([]any{errNotOurs}, args...)...)
	}
	i := 0
	next := func() expr.Any {
		if i >= len(exprs) {
			return nil
		}
		i++
		return exprs[i-1]
	}
	peek := func() expr.Any {
		if i >= len(exprs) {
			return nil
		}
		return exprs[i]
	}

	// meta nfproto
	m, ok := next().(*expr.Meta)
	if !ok || m.Key != expr.MetaKeyNFPROTO || m.SourceRegister {
		return fail("expression 1: want meta nfproto")
	}
	c, ok := next().(*expr.Cmp)
	if !ok || c.Op != expr.CmpOpEq || c.Register != m.Register || len(c.Data) != 1 {
		return fail("expression 2: want cmp eq nfproto")
	}
	var addrLen int
	var off uint32
	switch c.Data[0] {
	case unix.NFPROTO_IPV4:
		addrLen, off = 4, ip4SaddrOffset
	case unix.NFPROTO_IPV6:
		addrLen, off = 16, ip6SaddrOffset
	default:
		return fail("nfproto %d", c.Data[0])
	}

	// optional saddr: payload [bitwise] cmp
	full := make([]byte, addrLen)
	prefixBits := 0
	if p, ok := peek().(*expr.Payload); ok {
		next()
		if p.OperationType != expr.PayloadLoad || p.Base != expr.PayloadBaseNetworkHeader ||
			p.Offset != off || p.Len == 0 || int(p.Len) > addrLen {
			return fail("payload load %db @ base %d + %d is not the source address", p.Len, p.Base, p.Offset)
		}
		n := int(p.Len)
		prefixBits = 8 * n
		var mask []byte
		if b, ok := peek().(*expr.Bitwise); ok {
			next()
			if b.SourceRegister != p.DestRegister || b.DestRegister != p.DestRegister ||
				int(b.Len) != n || len(b.Mask) != n || len(b.Xor) != n || !allZero(b.Xor) {
				return fail("bitwise is not a prefix mask")
			}
			if prefixBits = maskBits(b.Mask); prefixBits < 0 {
				return fail("bitwise mask %x is not a prefix", b.Mask)
			}
			mask = b.Mask
		}
		c, ok := next().(*expr.Cmp)
		if !ok || c.Op != expr.CmpOpEq || c.Register != p.DestRegister || len(c.Data) != n {
			return fail("want cmp eq after the source address load")
		}
		if mask != nil {
			for j := range c.Data {
				if c.Data[j]&^mask[j] != 0 {
					return fail("address %x has bits outside mask %x", c.Data, mask)
				}
			}
		}
		copy(full, c.Data)
		if prefixBits == 0 {
			return fail("empty prefix match")
		}
	}
	addr, _ := netip.AddrFromSlice(full)
	pfx, err := addr.Prefix(prefixBits)
	if err != nil || pfx != netip.PrefixFrom(addr, prefixBits) {
		return fail("prefix %s/%d", addr, prefixBits)
	}
	rs.Source = pfx

	// oifname
	m, ok = next().(*expr.Meta)
	if !ok || m.Key != expr.MetaKeyOIFNAME || m.SourceRegister {
		return fail("want meta oifname")
	}
	c, ok = next().(*expr.Cmp)
	if !ok || c.Op != expr.CmpOpEq || c.Register != m.Register || len(c.Data) != ifNameSize {
		return fail("want cmp eq oifname with a %d-byte name", ifNameSize)
	}
	end := bytes.IndexByte(c.Data, 0)
	if end <= 0 || !allZero(c.Data[end:]) {
		return fail("oifname %q", c.Data)
	}
	rs.Out = string(c.Data[:end])

	// counter, masq
	ctr, ok := next().(*expr.Counter)
	if !ok {
		return fail("want counter")
	}
	rs.Packets, rs.Bytes = ctr.Packets, ctr.Bytes
	mq, ok := next().(*expr.Masq)
	if !ok || *mq != (expr.Masq{}) {
		return fail("want plain masquerade")
	}
	if i != len(exprs) {
		return fail("%d extra expressions", len(exprs)-i)
	}
	if checkNATRule(rs.NATRule) != nil {
		return fail("rule %s %s", rs.Source, rs.Out)
	}
	return rs, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
