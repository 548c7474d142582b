package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
)

// The events' kinds: a link's administrative state (a cable pulled by
// `netlab link`, and any link of the lab brought back up), and the lab's
// partition tables in a namespace (`netlab partition`, `netlab heal`).
const (
	OpLinkDown     Op = "link-down"
	OpLinkUp       Op = "link-up"
	OpSetPartition Op = "set-partition"
	OpDelPartition Op = "del-partition"
)

// event is which event verb runs a kind alone (kind.event).
type event int

const (
	noEvent        event = iota
	linkEvent            // netlab link
	partitionEvent       // netlab partition, netlab heal
	timelineEvent        // netlab timeline (steps_timeline.go)
)

// eventKinds are the events' rows of the table of kinds.
var eventKinds = map[Op]kind{
	OpLinkDown:     {event: linkEvent},
	OpLinkUp:       {event: linkEvent},
	OpSetPartition: {event: partitionEvent},
	// In a down the tables go with their namespaces; the rank is where a
	// removal of them would sort.
	OpDelPartition: {down: 9, event: partitionEvent},
}

// LinkDown sets a link administratively down to pull the cable of the
// interface Cable ("ns/link"): the link is that interface's veth peer,
// which then sees no carrier, or the interface itself when it is a tunnel
// (a VXLAN device has no carrier to lose).
type LinkDown struct {
	NS    string `json:"ns,omitempty"`
	Link  string `json:"link,omitempty"`
	Cable string `json:"cable,omitempty"`
}

func (LinkDown) Op() Op          { return OpLinkDown }
func (s LinkDown) Scope() string { return inScope(s.NS) }
func (LinkDown) sealed()         {}
func (s LinkDown) Command(string) string {
	why := "the cable of " + s.Cable + " pulled (netlab link)"
	if s.Cable == state.CableKey(s.NS, s.Link) {
		why += ": a tunnel has no carrier, so it goes down itself"
	}
	return fmt.Sprintf("%s link set %s down   # %s", ipn(s.NS), s.Link, why)
}

// LinkUp sets an existing link of the lab administratively up: a pulled
// cable plugged back, or a link set down by hand.
type LinkUp struct {
	NS   string `json:"ns,omitempty"`
	Link string `json:"link,omitempty"`
}

func (LinkUp) Op() Op          { return OpLinkUp }
func (s LinkUp) Scope() string { return inScope(s.NS) }
func (LinkUp) sealed()         {}
func (s LinkUp) Command(string) string {
	return fmt.Sprintf("%s link set %s up", ipn(s.NS), s.Link)
}

// SetPartition replaces the lab's partition tables in a namespace: its
// input drops every packet from Drop (IPv4 in an `ip` table, IPv6 in an
// `ip6` one). Partitions names the partitions the rules carry out.
type SetPartition struct {
	NS         string       `json:"ns,omitempty"`
	Drop       []netip.Addr `json:"drop,omitempty"`
	Partitions []string     `json:"partitions,omitempty"`
}

func (SetPartition) Op() Op          { return OpSetPartition }
func (s SetPartition) Scope() string { return inScope(s.NS) }
func (SetPartition) sealed()         {}
func (s SetPartition) Command(lab string) string {
	t := state.NFTTable(lab)
	var b strings.Builder
	// One nft batch: both tables are replaced atomically.
	fmt.Fprintf(&b, "%s <<'EOF'   # partition %s\n", inNS(s.NS, "nft -f -"), strings.Join(s.Partitions, ", "))
	for _, fam := range []struct {
		table, match string
		v4           bool
	}{{"ip", "ip", true}, {"ip6", "ip6", false}} {
		fmt.Fprintf(&b, "add table %s %s\ndelete table %s %s\n", fam.table, t, fam.table, t)
		first := true
		for _, a := range s.Drop {
			if a.Is4() != fam.v4 {
				continue
			}
			if first {
				fmt.Fprintf(&b, "add table %s %s\n", fam.table, t)
				fmt.Fprintf(&b, "add chain %s %s %s { type filter hook input priority filter; }\n", fam.table, t, state.PartitionChain)
				first = false
			}
			fmt.Fprintf(&b, "add rule %s %s %s %s saddr %s counter drop\n", fam.table, t, state.PartitionChain, fam.match, a)
		}
	}
	b.WriteString("EOF")
	return b.String()
}

// DelPartition drops the lab's partition tables in a namespace: the last
// partition it took part in is healed.
type DelPartition struct {
	NS string `json:"ns,omitempty"`
}

func (DelPartition) Op() Op          { return OpDelPartition }
func (s DelPartition) Scope() string { return inScope(s.NS) }
func (DelPartition) sealed()         {}
func (s DelPartition) Command(lab string) string {
	t := state.NFTTable(lab)
	return fmt.Sprintf("%s <<'EOF'\nadd table ip %s\ndelete table ip %s\nadd table ip6 %s\ndelete table ip6 %s\nEOF", inNS(s.NS, "nft -f -"), t, t, t, t)
}
func (s DelPartition) Removed(lab string) string {
	return "nftables tables ip and ip6 " + state.NFTTable(lab) + " (partition rules) in the " + s.NS
}
