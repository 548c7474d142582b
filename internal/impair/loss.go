package impair

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Loss rules live in a netdev table of the lab per namespace, with the same
// name as its NAT table (another family, so another table): one chain per
// interface on its egress hook, one rule in it:
//
//	numgen random mod 10000 < N counter drop
//
// which drops N in 10000 of the packets the interface sends. nftables has
// this on every kernel since 5.16 (netdev egress), netem or not.
const (
	lossModulus = 10000
	chainPrefix = "loss_"
)

// LossRule is one interface's loss, as the threshold out of 10000.
type LossRule struct {
	Link      string
	Threshold uint32
}

// TableName is the lab's table: netlab_<lab>, '-' made '_'.
func TableName(lab string) string { return "netlab_" + strings.ReplaceAll(lab, "-", "_") }

type nftConn struct {
	h   netns.NsHandle
	nft *nftables.Conn
}

func dialNft(nsName string) (*nftConn, error) {
	h, err := namespace.Open(nsName)
	if err != nil {
		return nil, fmt.Errorf("ns %s: %w", nsName, err)
	}
	c, err := dialNftAt(h)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("ns %s: open nftables socket: %w", nsName, err)
	}
	return c, nil
}

func dialNftAt(h netns.NsHandle) (*nftConn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	return &nftConn{h: h, nft: c}, nil
}

func (c *nftConn) close() {
	c.nft.CloseLasting()
	c.h.Close()
}

func (c *nftConn) table(name string) (*nftables.Table, error) {
	tables, err := c.nft.ListTablesOfFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name && t.Family == nftables.TableFamilyNetdev {
			return t, nil
		}
	}
	return nil, nil
}

// ObserveLoss reads the lab's loss table in the namespace: each interface's
// loss in percent; nil if there is no table. Anything in it netlab does not
// write makes it Foreign.
//
// Equivalent to: `ip netns exec NS nft list table netdev netlab_LAB`.
func ObserveLoss(nsName, lab string) (*state.LossTable, error) {
	c, err := dialNft(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	t, err := c.observeLoss(TableName(lab))
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe table netdev %s: %w", nsName, TableName(lab), err)
	}
	return t, nil
}

func (c *nftConn) observeLoss(name string) (*state.LossTable, error) {
	kt, err := c.table(name)
	if err != nil || kt == nil {
		return nil, err
	}
	out := &state.LossTable{Loss: map[string]float64{}}
	chains, err := c.nft.ListChainsOfTableFamily(nftables.TableFamilyNetdev)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		link, ok := strings.CutPrefix(ch.Name, chainPrefix)
		if !ok || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookEgress {
			out.Foreign = true
			continue
		}
		rules, err := c.nft.GetRules(kt, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		if len(rules) != 1 {
			out.Foreign = true
			continue
		}
		th, ok := decodeLoss(rules[0].Exprs)
		if !ok {
			out.Foreign = true
			continue
		}
		out.Loss[link] = float64(th) * 100 / lossModulus
	}
	return out, nil
}

// lossExprs is the rule, as nft(8) itself compiles it: a random number
// modulo 10000 in register 1, to network order (nftables compares registers
// byte by byte), compared below the threshold; counted; dropped.
func lossExprs(threshold uint32) []expr.Any {
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: lossModulus, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, threshold)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// decodeLoss reads the threshold back from a rule lossExprs made.
// google/nftables v0.3.0 does not decode byteorder expressions (it drops
// them from a rule read back), so the rule may come with or without it.
func decodeLoss(exprs []expr.Any) (uint32, bool) {
	if len(exprs) == 5 {
		bo, ok := exprs[1].(*expr.Byteorder)
		if !ok || bo.Op != expr.ByteorderHton || bo.SourceRegister != 1 || bo.DestRegister != 1 {
			return 0, false
		}
		exprs = append([]expr.Any{exprs[0]}, exprs[2:]...)
	}
	if len(exprs) != 4 {
		return 0, false
	}
	ng, ok1 := exprs[0].(*expr.Numgen)
	cmp, ok2 := exprs[1].(*expr.Cmp)
	_, ok3 := exprs[2].(*expr.Counter)
	v, ok4 := exprs[3].(*expr.Verdict)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	if ng.Modulus != lossModulus || ng.Type != unix.NFT_NG_RANDOM || ng.Offset != 0 || ng.Register != 1 ||
		cmp.Op != expr.CmpOpLt || cmp.Register != 1 || len(cmp.Data) != 4 || v.Kind != expr.VerdictDrop {
		return 0, false
	}
	return binary.BigEndian.Uint32(cmp.Data), true
}

// SetLoss makes the lab's loss table in the namespace hold exactly rules,
// replacing it in one netlink batch (add, delete, add the table, then its
// chains and rules), which the kernel commits as one transaction. Each
// rule's interface must exist: a netdev chain is bound to its device.
//
// Equivalent to: `nft -f -` with the text of plan's set-loss action.
func SetLoss(nsName, lab string, rules []LossRule) error {
	c, err := dialNft(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.setLoss(TableName(lab), rules); err != nil {
		return fmt.Errorf("ns %s: replace table netdev %s: %w", nsName, TableName(lab), err)
	}
	return nil
}

func (c *nftConn) setLoss(name string, rules []LossRule) error {
	t := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: name}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	c.nft.AddTable(t)
	policy := nftables.ChainPolicyAccept
	for _, r := range rules {
		if r.Threshold > lossModulus {
			return fmt.Errorf("loss on %s: threshold %d is over %d", r.Link, r.Threshold, lossModulus)
		}
		ch := c.nft.AddChain(&nftables.Chain{
			Name:     chainPrefix + r.Link,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookEgress,
			Priority: nftables.ChainPriorityFilter,
			Device:   r.Link,
			Policy:   &policy,
		})
		c.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: lossExprs(r.Threshold)})
	}
	return c.nft.Flush()
}

// DeleteLoss drops the lab's loss table in the namespace; nil if there is
// none.
//
// Equivalent to: `ip netns exec NS nft delete table netdev netlab_LAB`.
func DeleteLoss(nsName, lab string) error {
	c, err := dialNft(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	name := TableName(lab)
	kt, err := c.table(name)
	if err != nil {
		return fmt.Errorf("ns %s: delete table netdev %s: %w", nsName, name, err)
	}
	if kt == nil {
		return nil
	}
	// Add before delete: if the table vanished meanwhile, the batch still
	// holds.
	t := &nftables.Table{Family: nftables.TableFamilyNetdev, Name: name}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("ns %s: delete table netdev %s: %w", nsName, name, err)
	}
	return nil
}
