package nft

import (
	"encoding/binary"
	"fmt"
	"maps"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
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
// this on every kernel since 5.16 (netdev egress), netem or not. The
// modulus, the threshold of a percentage and the chain's name are state's,
// which the planner prints from.

// ObserveLoss reads the lab's loss table in the namespace: each interface's
// loss in percent; nil if there is no table. Anything in it netlab does not
// write makes it Foreign.
//
// Equivalent to: `ip netns exec NS nft list table netdev netlab_LAB`.
func ObserveLoss(nsName, lab string) (*state.LossTable, error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	thresholds, foreign, err := c.observeLoss(lab)
	if err != nil || thresholds == nil {
		return nil, err
	}
	out := &state.LossTable{Loss: map[string]float64{}, Foreign: len(foreign) > 0}
	for link, th := range thresholds {
		out.Loss[link] = float64(th) * 100 / state.LossModulus
	}
	return out, nil
}

// observeLoss reads the lab's loss table: each interface's threshold (nil
// if there is no table), and what in it is foreign.
func (c *conn) observeLoss(lab string) (map[string]uint32, []string, error) {
	name := state.NFTTable(lab)
	ct, err := c.observe(nftables.TableFamilyNetdev, name, isLossChain)
	if err != nil {
		return nil, nil, fmt.Errorf("ns %s: observe table netdev %s: %w", c.ns, name, err)
	}
	if ct == nil {
		return nil, nil, nil
	}
	thresholds := map[string]uint32{}
	foreign := ct.foreign
	for _, ch := range ct.chains {
		if len(ch.rules) != 1 {
			foreign = append(foreign, fmt.Sprintf("chain %s: %d rules", ch.name, len(ch.rules)))
			continue
		}
		r := ch.rules[0]
		exprs, err := r.decoded()
		var th uint32
		if err == nil {
			th, err = decodeLoss(exprs)
		}
		if err != nil {
			foreign = append(foreign, "chain "+ch.name+": "+r.describe(err))
			continue
		}
		thresholds[strings.TrimPrefix(ch.name, state.LossChain(""))] = th
	}
	return thresholds, foreign, nil
}

// isLossChain reports whether ch is a chain EnsureLoss creates: loss_<link>,
// filter at the egress hook of link, priority filter, policy accept.
func isLossChain(ch *kernelChain) bool {
	link, ok := strings.CutPrefix(ch.name, state.LossChain(""))
	return ok && link != "" &&
		ch.isBase(nftables.ChainTypeFilter, nftables.ChainHookEgress, nftables.ChainPriorityFilter, []string{link})
}

// lossExprs is the rule, as nft(8) itself compiles it: a random number
// modulo 10000 in register 1, to network order (nftables compares registers
// byte by byte), compared below the threshold; counted; dropped.
func lossExprs(threshold uint32) []expr.Any {
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: state.LossModulus, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, threshold)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// decodeLoss reads the threshold back from a rule lossExprs made: the same
// expressions in the same order with the same fields, or an error wrapping
// errNotOurs.
func decodeLoss(exprs []expr.Any) (uint32, error) {
	fail := func(format string, args ...any) (uint32, error) {
		return 0, fmt.Errorf("%w: "+format, append([]any{errNotOurs}, args...)...)
	}
	if len(exprs) != 5 {
		return fail("%d expressions, want numgen, byteorder, cmp, counter, drop", len(exprs))
	}
	ng, ok := exprs[0].(*expr.Numgen)
	if !ok || *ng != (expr.Numgen{Register: 1, Modulus: state.LossModulus, Type: unix.NFT_NG_RANDOM}) {
		return fail("expression 1: want numgen random mod %d into register 1", state.LossModulus)
	}
	bo, ok := exprs[1].(*expr.Byteorder)
	if !ok || *bo != (expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4}) {
		return fail("expression 2: want byteorder hton of register 1")
	}
	cmp, ok := exprs[2].(*expr.Cmp)
	if !ok || cmp.Op != expr.CmpOpLt || cmp.Register != 1 || len(cmp.Data) != 4 {
		return fail("expression 3: want cmp lt on register 1")
	}
	th := binary.BigEndian.Uint32(cmp.Data)
	if th > state.LossModulus {
		return fail("threshold %d is over %d", th, state.LossModulus)
	}
	if _, ok := exprs[3].(*expr.Counter); !ok {
		return fail("expression 4: want counter")
	}
	if v, ok := exprs[4].(*expr.Verdict); !ok || *v != (expr.Verdict{Kind: expr.VerdictDrop}) {
		return fail("expression 5: want drop")
	}
	return th, nil
}

// EnsureLoss makes the lab's loss table in the namespace hold exactly
// rules, one chain per interface. If it already does, nothing is sent and
// the counters keep counting (changed=false); otherwise the table is
// replaced in one netlink batch (add, delete, add the table, then its
// chains and rules), which the kernel commits as one transaction. Each
// rule's interface must exist: a netdev chain is bound to its device.
//
// Equivalent to: `nft -f -` with the text of plan's set-loss action.
func EnsureLoss(nsName, lab string, rules []state.LossRule) (changed bool, err error) {
	name := state.NFTTable(lab)
	want := map[string]uint32{}
	for _, r := range rules {
		if err := checkLossRule(r); err != nil {
			return false, fmt.Errorf("ns %s: table netdev %s: %w", nsName, name, err)
		}
		want[r.Link] = state.LossThreshold(r.Percent)
	}
	c, err := dial(nsName)
	if err != nil {
		return false, err
	}
	defer c.close()
	have, foreign, err := c.observeLoss(lab)
	if err != nil {
		return false, err
	}
	if have != nil && len(foreign) == 0 && len(want) == len(rules) && maps.Equal(have, want) {
		return false, nil
	}
	if err := c.replaceLoss(lab, rules); err != nil {
		return false, fmt.Errorf("ns %s: replace table netdev %s: %w", nsName, name, err)
	}
	return true, nil
}

func checkLossRule(r state.LossRule) error {
	if th := state.LossThreshold(r.Percent); r.Percent < 0 || th > state.LossModulus {
		return fmt.Errorf("loss on %s: %g%% is not a percentage", r.Link, r.Percent)
	}
	if r.Link == "" || len(r.Link) >= ifNameSize {
		return fmt.Errorf("loss on %q: want an interface name of 1 to %d bytes", r.Link, ifNameSize-1)
	}
	return nil
}

// replaceLoss replaces the lab's loss table by one holding rules, in one
// batch.
func (c *conn) replaceLoss(lab string, rules []state.LossRule) error {
	t := c.replaceTable(nftables.TableFamilyNetdev, state.NFTTable(lab))
	policy := nftables.ChainPolicyAccept
	for _, r := range rules {
		ch := c.nft.AddChain(&nftables.Chain{
			Name:     state.LossChain(r.Link),
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nftables.ChainHookEgress,
			Priority: nftables.ChainPriorityFilter,
			Device:   r.Link,
			Policy:   &policy,
		})
		c.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: lossExprs(state.LossThreshold(r.Percent))})
	}
	return c.nft.Flush()
}

// DeleteLoss drops the lab's loss table in the namespace; nil if there is
// none.
//
// Equivalent to: `ip netns exec NS nft delete table netdev netlab_LAB`.
func DeleteLoss(nsName, lab string) error {
	c, err := dial(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	return c.deleteTable(nftables.TableFamilyNetdev, state.NFTTable(lab))
}

// ProbeLoss says whether the kernel can apply loss rules (netdev egress
// chains, Linux >= 5.16): it makes a loss table on lo of the namespace h,
// which must be a scratch namespace the caller throws away with the table
// (namespace.Scratch), and returns the kernel's answer. h stays the
// caller's.
//
// Equivalent to: `unshare -n nft add table netdev netlab_probe ...`.
func ProbeLoss(h netns.NsHandle) error {
	c, err := newConn("scratch", h)
	if err != nil {
		return err
	}
	defer c.close()
	return c.replaceLoss("probe", []state.LossRule{{Link: "lo", Percent: 0}})
}
