package nat

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// reg is the register every expression of a rule uses: NFT_REG_1, the
// 16-byte register nft itself uses (an IPv6 address needs 16 bytes).
const reg = unix.NFT_REG_1

// Source address offsets in the network header: IPv4 saddr is bytes 12-15,
// IPv6 saddr bytes 8-23.
const (
	ip4SaddrOffset = 12
	ip6SaddrOffset = 8
)

// buildExprs returns the expressions of one masquerade rule, in the order
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
func buildExprs(r Rule) []expr.Any {
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

// errUndecodable marks a rule netlab did not write.
var errUndecodable = errors.New("not a netlab masquerade rule")

// decodeExprs reads back a rule built by buildExprs. It also accepts nft's
// own compilation of the same rule text (nft loads only the bytes a
// byte-aligned prefix needs, e.g. 3 bytes and no bitwise for a /24), so a
// table made from Render's commands decodes to the same rules. Anything
// else — other expressions, other order, flags on masq, a wildcard
// interface — is an error wrapping errUndecodable.
func decodeExprs(exprs []expr.Any) (RuleState, error) {
	var rs RuleState
	fail := func(format string, args ...any) (RuleState, error) {
		return RuleState{}, fmt.Errorf("%w: "+format, append([]any{errUndecodable}, args...)...)
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
	if checkRule(rs.Rule) != nil {
		return fail("rule %v", rs.Rule)
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
