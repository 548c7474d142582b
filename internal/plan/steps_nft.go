package plan

import (
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// nftables' kinds: the lab's NAT table and its table of loss rules in a
// namespace, each replaced whole in one batch or dropped.
const (
	OpSetNAT  Op = "set-nat"
	OpDelNAT  Op = "del-nat"
	OpSetLoss Op = "set-loss"
	OpDelLoss Op = "del-loss"
)

// nftKinds are nftables' rows of the table of kinds.
var nftKinds = map[Op]kind{
	OpSetNAT:  {},
	OpDelNAT:  {down: 9},
	OpSetLoss: {impairment: true},
	OpDelLoss: {down: 10, impairment: true},
}

// SetNAT replaces the lab's NAT table in a namespace with these rules.
type SetNAT struct {
	NS  string          `json:"ns,omitempty"`
	NAT []state.NATRule `json:"nat,omitempty"`
}

func (SetNAT) Op() Op          { return OpSetNAT }
func (s SetNAT) Scope() string { return inScope(s.NS) }
func (SetNAT) sealed()         {}
func (s SetNAT) Command(lab string) string {
	t := state.NFTTable(lab)
	var b strings.Builder
	// One nft batch: the table is replaced atomically.
	fmt.Fprintf(&b, "%s <<'EOF'\n", inNS(s.NS, "nft -f -"))
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\nadd table inet %s\n", t, t, t)
	fmt.Fprintf(&b, "add chain inet %s postrouting { type nat hook postrouting priority srcnat; }\n", t)
	for _, r := range s.NAT {
		fam, ip := "ipv4", "ip"
		if r.Source.Addr().Is6() {
			fam, ip = "ipv6", "ip6"
		}
		fmt.Fprintf(&b, "add rule inet %s postrouting meta nfproto %s %s saddr %s oifname %q counter masquerade\n", t, fam, ip, r.Source, r.Out)
	}
	b.WriteString("EOF")
	return b.String()
}

// DelNAT drops the lab's NAT table in a namespace.
type DelNAT struct {
	NS string `json:"ns,omitempty"`
}

func (DelNAT) Op() Op          { return OpDelNAT }
func (s DelNAT) Scope() string { return inScope(s.NS) }
func (DelNAT) sealed()         {}
func (s DelNAT) Command(lab string) string {
	return inNS(s.NS, "nft delete table inet "+state.NFTTable(lab))
}
func (s DelNAT) Removed(lab string) string {
	return "nftables table inet " + state.NFTTable(lab) + " in the " + s.NS
}

// SetLoss replaces the lab's netdev table of loss rules in a namespace:
// one rule on each interface's egress hook.
type SetLoss struct {
	NS   string           `json:"ns,omitempty"`
	Loss []state.LossRule `json:"loss,omitempty"`
}

func (SetLoss) Op() Op          { return OpSetLoss }
func (s SetLoss) Scope() string { return inScope(s.NS) }
func (SetLoss) sealed()         {}
func (s SetLoss) Command(lab string) string {
	t := state.NFTTable(lab)
	var b strings.Builder
	// One nft batch: the table is replaced atomically.
	fmt.Fprintf(&b, "%s <<'EOF'\n", inNS(s.NS, "nft -f -"))
	fmt.Fprintf(&b, "add table netdev %s\ndelete table netdev %s\nadd table netdev %s\n", t, t, t)
	for _, r := range s.Loss {
		fmt.Fprintf(&b, "add chain netdev %s %s { type filter hook egress device %q priority 0; }\n", t, state.LossChain(r.Link), r.Link)
		fmt.Fprintf(&b, "add rule netdev %s %s numgen random mod %d < %d counter drop   # loss %s\n",
			t, state.LossChain(r.Link), state.LossModulus, state.LossThreshold(r.Percent), topology.FormatPercent(r.Percent))
	}
	b.WriteString("EOF")
	return b.String()
}

// DelLoss drops the lab's table of loss rules in a namespace.
type DelLoss struct {
	NS string `json:"ns,omitempty"`
}

func (DelLoss) Op() Op          { return OpDelLoss }
func (s DelLoss) Scope() string { return inScope(s.NS) }
func (DelLoss) sealed()         {}
func (s DelLoss) Command(lab string) string {
	return inNS(s.NS, "nft delete table netdev "+state.NFTTable(lab))
}
func (s DelLoss) Removed(lab string) string {
	return "nftables table netdev " + state.NFTTable(lab) + " (loss rules) in the " + s.NS
}
