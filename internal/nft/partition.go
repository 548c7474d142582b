package nft

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/netlab-dev/netlab/internal/state"
)

// A partition is cut where packets are delivered: the lab's `ip` and `ip6`
// tables netlab_<lab> in a namespace (the same name as its NAT and loss
// tables, other families, so other tables) each hold one chain,
// state.PartitionChain, on the input hook, with one rule per source of the
// other group:
//
//	ip saddr 10.0.0.3 counter drop
//
// Dropped on input and never on output: a packet the sender's own output
// hook drops fails its system call (sendto gets EPERM, measured here),
// which no cut network does; dropped on the receiver's input it vanishes,
// the sender times out and retransmits, and TCP connections outlive the
// partition (no reset is ever sent). Forwarded traffic (a router in a
// group) is not touched: only packets to the namespace itself.

// partitionFamilies are the families of the partition tables, IPv4 first.
var partitionFamilies = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

// saddr is where a family's source address is in the network header.
func saddr(fam nftables.TableFamily) (offset, length uint32) {
	if fam == nftables.TableFamilyIPv4 {
		return ip4SaddrOffset, 4
	}
	return ip6SaddrOffset, 16
}

// ofFamily says whether an address belongs in a family's table.
func ofFamily(a netip.Addr, fam nftables.TableFamily) bool {
	return a.Is4() == (fam == nftables.TableFamilyIPv4)
}

// partitionExprs is the rule that drops packets from a: the source address
// loaded into register 1 and compared, counted, dropped.
func partitionExprs(fam nftables.TableFamily, a netip.Addr) []expr.Any {
	off, n := saddr(fam)
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: a.AsSlice()},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// decodePartition reads the source back from a rule partitionExprs made:
// the same expressions in the same order, or an error wrapping errNotOurs.
func decodePartition(fam nftables.TableFamily, exprs []expr.Any) (state.PartitionDrop, error) {
	fail := func(format string, args ...any) (state.PartitionDrop, error) {
		return state.PartitionDrop{}, fmt.Errorf("%w: "+format, append([]any{errNotOurs}, args...)...)
	}
	if len(exprs) != 4 {
		return fail("%d expressions, want payload, cmp, counter, drop", len(exprs))
	}
	off, n := saddr(fam)
	pl, ok := exprs[0].(*expr.Payload)
	if !ok || pl.OperationType != expr.PayloadLoad || pl.DestRegister != reg || pl.Base != expr.PayloadBaseNetworkHeader ||
		pl.Offset != off || pl.Len != n || pl.CsumType != expr.CsumTypeNone {
		return fail("expression 1: want the source address into register 1")
	}
	cmp, ok := exprs[1].(*expr.Cmp)
	if !ok || cmp.Op != expr.CmpOpEq || cmp.Register != reg || len(cmp.Data) != int(n) {
		return fail("expression 2: want cmp eq on register 1")
	}
	from, _ := netip.AddrFromSlice(cmp.Data)
	c, ok := exprs[2].(*expr.Counter)
	if !ok {
		return fail("expression 3: want counter")
	}
	if v, ok := exprs[3].(*expr.Verdict); !ok || *v != (expr.Verdict{Kind: expr.VerdictDrop}) {
		return fail("expression 4: want drop")
	}
	return state.PartitionDrop{From: from, Packets: c.Packets}, nil
}

// isPartitionChain reports whether ch is the chain EnsurePartition
// creates: filter on the input hook, priority filter, policy accept.
func isPartitionChain(ch *kernelChain) bool {
	return ch.name == state.PartitionChain &&
		ch.isBase(nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter, nil)
}

// ObservePartition reads the lab's partition tables in the namespace: the
// sources whose packets they drop, with their counters, IPv4 first; nil if
// there is neither table. Anything in them netlab does not write makes the
// result Foreign.
//
// Equivalent to: `ip netns exec NS nft list table ip netlab_LAB; ... ip6 ...`.
func ObservePartition(nsName, lab string) (*state.PartitionTable, error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	t, _, err := c.observePartition(lab)
	return t, err
}

// observePartition reads both families' tables and says what in them is
// foreign.
func (c *conn) observePartition(lab string) (*state.PartitionTable, []string, error) {
	name := state.NFTTable(lab)
	var out *state.PartitionTable
	var foreign []string
	for _, fam := range partitionFamilies {
		ct, err := c.observe(fam, name, isPartitionChain)
		if err != nil {
			return nil, nil, fmt.Errorf("ns %s: observe table %s %s: %w", c.ns, familyName(fam), name, err)
		}
		if ct == nil {
			continue
		}
		if out == nil {
			out = &state.PartitionTable{}
		}
		foreign = append(foreign, ct.foreign...)
		if len(ct.chains) == 0 {
			foreign = append(foreign, fmt.Sprintf("table %s %s: no chain %s (type filter hook input priority filter)", familyName(fam), name, state.PartitionChain))
		}
		for _, ch := range ct.chains {
			for _, r := range ch.rules {
				exprs, err := r.decoded()
				var d state.PartitionDrop
				if err == nil {
					d, err = decodePartition(fam, exprs)
				}
				if err == nil && !ofFamily(d.From, fam) {
					err = fmt.Errorf("%w: source %s in a table of family %s", errNotOurs, d.From, familyName(fam))
				}
				if err != nil {
					foreign = append(foreign, r.describe(err))
					continue
				}
				out.Drop = append(out.Drop, d)
			}
		}
	}
	if out != nil {
		out.Foreign = len(foreign) > 0
	}
	return out, foreign, nil
}

// checkSources rejects what no rule can match: an invalid address, an
// IPv4-mapped IPv6 one (the kernel would compare 16 bytes an IPv4 packet
// does not carry), or a repeated one.
func checkSources(from []netip.Addr) error {
	for i, a := range from {
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("source %q: want a plain IPv4 or IPv6 address", a)
		}
		if slices.Contains(from[:i], a) {
			return fmt.Errorf("source %s twice", a)
		}
	}
	return nil
}

// EnsurePartition makes the lab's partition tables in the namespace drop
// exactly the packets from these sources, on input, in this order within
// each family: an `ip` table for the IPv4 sources and an `ip6` table for
// the IPv6 ones, a family without sources having no table. If they already
// do, nothing is sent and the counters keep counting (changed=false);
// otherwise both tables are replaced in one netlink batch, which the kernel
// commits as one transaction: no moment without the old rules or the new.
//
// Equivalent to: `nft -f -` with the text of plan's set-partition action.
func EnsurePartition(nsName, lab string, from []netip.Addr) (changed bool, err error) {
	name := state.NFTTable(lab)
	if err := checkSources(from); err != nil {
		return false, fmt.Errorf("ns %s: partition tables %s: %w", nsName, name, err)
	}
	c, err := dial(nsName)
	if err != nil {
		return false, err
	}
	defer c.close()
	have, foreign, err := c.observePartition(lab)
	if err != nil {
		return false, err
	}
	switch {
	case len(from) == 0 && have == nil:
		return false, nil
	case len(from) > 0 && have != nil && len(foreign) == 0 && slices.Equal(have.Sources(), byFamily(from)):
		return false, nil
	}
	if err := c.replacePartition(lab, from); err != nil {
		return false, fmt.Errorf("ns %s: replace partition tables %s: %w", nsName, name, err)
	}
	return true, nil
}

// byFamily is the sources in the order the tables hold them: IPv4 first.
func byFamily(from []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, fam := range partitionFamilies {
		for _, a := range from {
			if ofFamily(a, fam) {
				out = append(out, a)
			}
		}
	}
	return out
}

// replacePartition replaces both families' tables in one batch: each is
// added and deleted (so the delete never fails), then made again with its
// chain and rules if the family has sources.
func (c *conn) replacePartition(lab string, from []netip.Addr) error {
	name := state.NFTTable(lab)
	policy := nftables.ChainPolicyAccept
	for _, fam := range partitionFamilies {
		t := &nftables.Table{Family: fam, Name: name}
		c.nft.AddTable(t)
		c.nft.DelTable(t)
		var mine []netip.Addr
		for _, a := range from {
			if ofFamily(a, fam) {
				mine = append(mine, a)
			}
		}
		if len(mine) == 0 {
			continue
		}
		c.nft.AddTable(t)
		ch := c.nft.AddChain(&nftables.Chain{
			Name:     state.PartitionChain,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookInput,
			Priority: nftables.ChainPriorityFilter,
			Policy:   &policy,
		})
		for _, a := range mine {
			c.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: partitionExprs(fam, a)})
		}
	}
	return c.nft.Flush()
}

// DeletePartition drops the lab's partition tables in the namespace; nil
// if there are none.
//
// Equivalent to: `ip netns exec NS nft delete table ip netlab_LAB` and
// `... ip6 ...` (each when it exists).
func DeletePartition(nsName, lab string) error {
	c, err := dial(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	for _, fam := range partitionFamilies {
		if err := c.deleteTable(fam, state.NFTTable(lab)); err != nil {
			return err
		}
	}
	return nil
}
