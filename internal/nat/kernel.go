package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// conn is an nftables connection bound to one namespace. The socket is
// created inside the namespace (nftables.WithNetNSFd: mdlayher/socket
// switches a fresh locked thread) and keeps talking to it from any thread.
type conn struct {
	ns  string
	h   netns.NsHandle
	nft *nftables.Conn
}

// dial opens the namespace and one lasting nftables socket in it, so that
// what Ensure reads and the batch it sends go through the same socket.
func dial(nsName string) (*conn, error) {
	h, err := namespace.Open(nsName)
	if err != nil {
		return nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting())
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("ns %s: open nftables socket: %w", nsName, err)
	}
	return &conn{ns: nsName, h: h, nft: c}, nil
}

func (c *conn) close() {
	c.nft.CloseLasting()
	c.h.Close()
}

// Observe reads the lab's table in the namespace (nsName "host" is the root
// namespace). exists is false if there is no such table.
//
// Equivalent to: `ip netns exec NS nft list table inet netlab_LAB`.
func Observe(nsName, lab string) (t *Table, exists bool, err error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, false, err
	}
	defer c.close()
	t, _, err = c.observe(lab)
	if err != nil {
		return nil, false, fmt.Errorf("ns %s: observe table inet %s: %w", nsName, TableName(lab), err)
	}
	return t, t != nil, nil
}

// Ensure makes the lab's table in the namespace hold exactly rules, in
// order: one `inet` table netlab_<lab> with one chain (type nat, hook
// postrouting, priority srcnat) and one counted masquerade rule per Rule.
//
// If the table already holds exactly these rules, nothing is sent and the
// counters keep counting (changed=false). Otherwise the table is replaced in
// one netlink batch — add table, delete table, add table, chain and rules —
// which the kernel commits as one transaction: there is no moment without
// NAT, and nothing outside the table is touched. (The leading add makes the
// delete valid whether or not the table exists by then; a batch with a
// failing delete would be rejected whole. Counters restart on a change.)
//
// Equivalent to: `nft -f -` with "table inet T {}; delete table inet T" and
// the commands of Render.
func Ensure(nsName, lab string, rules []Rule) (changed bool, err error) {
	want := make([]Rule, len(rules))
	for i, r := range rules {
		if err := checkRule(r); err != nil {
			return false, fmt.Errorf("ns %s: table inet %s: %w", nsName, TableName(lab), err)
		}
		want[i] = normalize(r)
	}
	c, err := dial(nsName)
	if err != nil {
		return false, err
	}
	defer c.close()
	cur, _, err := c.observe(lab)
	if err != nil {
		return false, fmt.Errorf("ns %s: ensure table inet %s: %w", nsName, TableName(lab), err)
	}
	if cur != nil && len(cur.Foreign) == 0 && slices.Equal(cur.RuleList(), want) {
		return false, nil
	}

	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName(lab)}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	c.nft.AddTable(t)
	ch := c.nft.AddChain(&nftables.Chain{
		Name:     ChainName,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	for _, r := range want {
		c.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: buildExprs(r)})
	}
	if err := c.nft.Flush(); err != nil {
		return false, fmt.Errorf("ns %s: replace table inet %s: %w", nsName, t.Name, err)
	}
	return true, nil
}

// Delete drops the lab's table and everything in it; it returns nil if the
// table does not exist.
//
// Equivalent to: `nft delete table inet netlab_LAB` (when it exists).
func Delete(nsName, lab string) error {
	c, err := dial(nsName)
	if err != nil {
		return err
	}
	defer c.close()
	name := TableName(lab)
	t, err := c.table(name)
	if err != nil {
		return fmt.Errorf("ns %s: delete table inet %s: %w", nsName, name, err)
	}
	if t == nil {
		return nil
	}
	// Add before delete: if the table vanished meanwhile, the delete still
	// finds one and the batch does not fail.
	t = &nftables.Table{Family: nftables.TableFamilyINet, Name: name}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("ns %s: delete table inet %s: %w", nsName, name, err)
	}
	return nil
}

// table returns the inet table called name, or nil.
func (c *conn) table(name string) (*nftables.Table, error) {
	tables, err := c.nft.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name && t.Family == nftables.TableFamilyINet {
			return t, nil
		}
	}
	return nil, nil
}

// observe reads the lab's table; nil if absent.
func (c *conn) observe(lab string) (*Table, bool, error) {
	name := TableName(lab)
	kt, err := c.table(name)
	if err != nil || kt == nil {
		return nil, false, err
	}
	out := &Table{Name: name}
	// nftables v0.3.0 decodes NFTA_TABLE_FLAGS and NFTA_TABLE_USE in host
	// byte order (tableFromMsg sets no ByteOrder); they are big-endian.
	if f := netToHost(kt.Flags); f != 0 {
		out.Foreign = append(out.Foreign, fmt.Sprintf("table flags %#x (dormant or owned)", f))
	}

	chains, err := c.nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, false, fmt.Errorf("list chains: %w", err)
	}
	var ours *nftables.Chain
	n := 0
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != name {
			continue
		}
		n++
		if ours == nil && isOurChain(ch) {
			ours = ch
			continue
		}
		out.Foreign = append(out.Foreign, "chain "+describeChain(ch))
	}
	if use := netToHost(kt.Use); use != uint32(n) {
		// The kernel counts chains, sets, maps, stateful objects and
		// flowtables in the table's use.
		out.Foreign = append(out.Foreign, fmt.Sprintf("%d sets, maps, stateful objects or flowtables", int(use)-n))
	}
	if ours == nil {
		out.Foreign = append(out.Foreign, "no chain "+ChainName+" (type nat hook postrouting priority srcnat)")
		return out, true, nil
	}

	rules, err := c.nft.GetRules(kt, ours)
	if err != nil {
		return nil, false, fmt.Errorf("list rules of chain %s: %w", ChainName, err)
	}
	names, err := c.exprNames(name, ChainName)
	if err != nil {
		return nil, false, err
	}
	for _, r := range rules {
		// The library silently drops expressions it does not know; a rule
		// whose kernel expressions outnumber the decoded ones is not ours.
		if got := names[r.Handle]; len(got) != len(r.Exprs) {
			out.Foreign = append(out.Foreign, fmt.Sprintf("rule handle %d: expressions %v", r.Handle, got))
			continue
		}
		rs, err := decodeExprs(r.Exprs)
		if err != nil {
			out.Foreign = append(out.Foreign, fmt.Sprintf("rule handle %d: %v", r.Handle, err))
			continue
		}
		out.Rules = append(out.Rules, rs)
	}
	return out, true, nil
}

// isOurChain reports whether ch is the chain Ensure creates.
func isOurChain(ch *nftables.Chain) bool {
	return ch.Name == ChainName && ch.Type == nftables.ChainTypeNAT &&
		ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPostrouting &&
		ch.Priority != nil && *ch.Priority == *nftables.ChainPriorityNATSource &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
}

func describeChain(ch *nftables.Chain) string {
	s := ch.Name
	if ch.Hooknum != nil {
		s += fmt.Sprintf(" (type %s hook %d", ch.Type, *ch.Hooknum)
		if ch.Priority != nil {
			s += fmt.Sprintf(" priority %d", *ch.Priority)
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			s += " policy drop"
		}
		s += ")"
	}
	return s
}

// netToHost undoes a big-endian u32 decoded in host byte order.
func netToHost(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}

// exprNames dumps the chain's rules over a raw netlink socket and returns
// each rule's expression names by handle: the count the kernel holds, which
// nftables.GetRules does not expose.
//
// Equivalent to: `nft --debug=netlink list chain inet TABLE CHAIN`.
func (c *conn) exprNames(table, chain string) (map[uint64][]string, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(c.h)})
	if err != nil {
		return nil, fmt.Errorf("open netfilter socket: %w", err)
	}
	defer nl.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		// struct nfgenmsg: family, version, res_id (big-endian)
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	msgs, err := nl.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("dump rules of chain %s: %w", chain, err)
	}
	out := make(map[uint64][]string)
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		var handle uint64
		var names []string
		var tbl, chn string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				tbl = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chn = ad.String()
			case unix.NFTA_RULE_HANDLE:
				handle = ad.Uint64()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						nad.Nested(func(ead *netlink.AttributeDecoder) error {
							for ead.Next() {
								if ead.Type() == unix.NFTA_EXPR_NAME {
									names = append(names, ead.String())
								}
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		if tbl == table && chn == chain {
			out[handle] = names
		}
	}
	return out, nil
}

// ForwardWarnings inspects, read-only, the namespace's base chains hooked
// at forward with policy drop (any table of family ip, ip6 or inet,
// including iptables-nft's "filter" FORWARD) and returns one warning per
// chain and lab source prefix of the chain's family, naming the chain and
// the rule a user would add. It never changes anything: netlab does not
// edit chains it does not own.
//
// Equivalent to: `ip netns exec NS nft list chains`.
func ForwardWarnings(nsName string, sources []netip.Prefix) ([]string, error) {
	c, err := dial(nsName)
	if err != nil {
		return nil, err
	}
	defer c.close()
	chains, err := c.nft.ListChains()
	if err != nil {
		return nil, fmt.Errorf("ns %s: list chains: %w", nsName, err)
	}
	var warnings []string
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		fam := ch.Table.Family
		if fam != nftables.TableFamilyIPv4 && fam != nftables.TableFamilyIPv6 && fam != nftables.TableFamilyINet {
			continue // bridge/netdev forward hooks do not see routed traffic
		}
		for _, src := range sources {
			src = src.Masked()
			is4 := src.Addr().Is4()
			if (fam == nftables.TableFamilyIPv4 && !is4) || (fam == nftables.TableFamilyIPv6 && is4) {
				continue
			}
			_, pl := family(src)
			where := familyName(fam) + " " + ch.Table.Name + " " + ch.Name
			warnings = append(warnings, fmt.Sprintf(
				"table %s chain %s has policy drop: the lab's forwarded traffic from %s will be dropped; "+
					"to allow it: nft insert rule %s %s saddr %s accept "+
					"(and the reply direction: ct state established,related accept)",
				familyName(fam)+" "+ch.Table.Name, ch.Name, src, where, pl, src))
		}
	}
	return warnings, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family%d", f)
}
