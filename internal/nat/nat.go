// Package nat is netlab's NAT driver: it gives a lab one nftables table,
// `inet netlab_<lab>`, in a namespace, holding one masquerade rule per
// source prefix and uplink, and keeps it equal to what the topology asks for.
//
// Why one table of our own: nftables tables are namespaced per owner, so a
// lab can replace its table atomically (one netlink batch) without ever
// touching the user's rules, iptables-nft's tables or another lab's table,
// and tearing a lab down is deleting one table. netlab never flushes the
// ruleset, never changes a policy and never edits a chain it did not create.
package nat

import (
	"fmt"
	"net/netip"
	"strings"
)

// ChainName is the name of the lab table's only chain.
const ChainName = "postrouting"

// ifNameSize is the kernel's IFNAMSIZ: interface names are at most 15 bytes
// plus a NUL, and `oifname` compares all 16 bytes.
const ifNameSize = 16

// TableName returns the lab's table name: "netlab_" + lab with '-' replaced
// by '_' (nft accepts '-' in names only when quoted).
func TableName(lab string) string {
	return "netlab_" + strings.ReplaceAll(lab, "-", "_")
}

// Rule masquerades packets from Source leaving via the interface Out.
// Source may be IPv4 or IPv6 (NAT66); a /0 prefix matches the whole family.
type Rule struct {
	Source netip.Prefix
	Out    string
}

// RuleState is a rule as read from the kernel, with its counter.
type RuleState struct {
	Rule
	Packets, Bytes uint64
}

// Table is a lab's table as read from the kernel.
type Table struct {
	Name  string
	Rules []RuleState
	// Foreign lists what the table holds that netlab does not write (extra
	// chains, sets, rules it cannot decode, ...). A table with anything
	// foreign differs from every rule list, so Ensure replaces it.
	Foreign []string
}

// RuleList returns the table's rules without counters.
func (t *Table) RuleList() []Rule {
	rules := make([]Rule, len(t.Rules))
	for i, r := range t.Rules {
		rules[i] = r.Rule
	}
	return rules
}

// checkRule rejects what the kernel could not match exactly: an invalid
// prefix, or an interface name that is empty, too long or not a plain name.
func checkRule(r Rule) error {
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
// and what Observe reads back.
func normalize(r Rule) Rule {
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
func ruleText(r Rule) string {
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

// Render returns the nft commands equivalent to Ensure(ns, lab, rules), one
// per line, for `netlab plan`. Ensure applies them atomically, after
// deleting any previous version of the table in the same batch.
//
// The chain line is nft syntax: in a shell, quote it (the ';' would end the
// command); `nft -f` takes the lines without the leading "nft ".
func Render(lab string, rules []Rule) []string {
	t := TableName(lab)
	out := []string{
		"nft add table inet " + t,
		"nft add chain inet " + t + " " + ChainName + " { type nat hook postrouting priority srcnat; }",
	}
	for _, r := range rules {
		out = append(out, "nft add rule inet "+t+" "+ChainName+" "+ruleText(r))
	}
	return out
}
