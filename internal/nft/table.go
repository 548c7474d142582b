// Package nft is netlab's nftables driver, the only importer of
// google/nftables: the tables netlab owns in a namespace — the lab's NAT
// table (`inet`, nat.go) and its table of loss rules (`netdev`, loss.go) —
// made, read back and deleted, and a read-only look at the namespace's
// forward chains (forward.go). It knows nothing of plans: the engine calls
// it.
//
// Why tables of our own: nftables tables are namespaced per owner, so a lab
// replaces its table atomically (one netlink batch) without ever touching
// the user's rules, iptables-nft's tables or another lab's table, and
// tearing a lab down is deleting its tables. The table's name is the
// ownership marker (state.NFTTable). netlab never flushes the ruleset,
// never changes a policy and never edits a chain it did not create.
//
// Every table is read the same way (observe): anything in it netlab does
// not write — table flags, sets, other chains, a chain's other hook, device
// or flags, a rule with any other expression or attribute — makes it
// foreign, and Ensure then replaces it whole.
package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Attributes of linux/netfilter/nf_tables.h that x/sys/unix does not name.
const (
	nftaChainFlags    = 10 // NFTA_CHAIN_FLAGS
	nftaChainUserdata = 12 // NFTA_CHAIN_USERDATA
	nftaHookDevs      = 4  // NFTA_HOOK_DEVS
	nftaDeviceName    = 1  // NFTA_DEVICE_NAME
	nftChainBase      = 1  // NFT_CHAIN_BASE: every base chain carries it
)

// conn is an nftables connection bound to one namespace. The socket is
// created inside the namespace (nftables.WithNetNSFd: mdlayher/socket
// switches a fresh locked thread) and keeps talking to it from any thread.
// It is lasting (nftables.AsLasting): what an Ensure reads and the batch it
// sends go through the same socket.
type conn struct {
	ns      string
	h       netns.NsHandle
	closeNS bool // the handle is the conn's to close
	nft     *nftables.Conn
	raw     *netlink.Conn // for the dumps google/nftables does not decode; opened on first use
}

// dial opens the named namespace ("host" is the root namespace) and a
// connection in it.
func dial(nsName string) (*conn, error) {
	h, err := namespace.Open(nsName)
	if err != nil {
		return nil, err
	}
	c, err := newConn(nsName, h)
	if err != nil {
		h.Close()
		return nil, err
	}
	c.closeNS = true
	return c, nil
}

// newConn opens a connection in the namespace h, which stays the caller's.
// It is the one place a connection is made.
func newConn(nsName string, h netns.NsHandle) (*conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("ns %s: open nftables socket: %w", nsName, err)
	}
	return &conn{ns: nsName, h: h, nft: c}, nil
}

func (c *conn) close() {
	c.nft.CloseLasting()
	if c.raw != nil {
		c.raw.Close()
	}
	if c.closeNS {
		c.h.Close()
	}
}

// table returns the table of family fam called name, or nil.
//
// Equivalent to: `nft list tables FAMILY`.
func (c *conn) table(fam nftables.TableFamily, name string) (*nftables.Table, error) {
	tables, err := c.nft.ListTablesOfFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name && t.Family == fam {
			return t, nil
		}
	}
	return nil, nil
}

// replaceTable queues, for the next Flush, the replacement of the table by
// an empty one: add, delete, add. The kernel commits the batch as one
// transaction, so there is no moment without the old rules or the new ones;
// the leading add makes the delete valid whether or not the table exists by
// then (a batch with a failing delete would be rejected whole).
//
// Equivalent to: `nft -f -` with "table F T {}; delete table F T; table F T {}".
func (c *conn) replaceTable(fam nftables.TableFamily, name string) *nftables.Table {
	t := &nftables.Table{Family: fam, Name: name}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	c.nft.AddTable(t)
	return t
}

// deleteTable drops the table and everything in it; nil if there is no such
// table.
//
// Equivalent to: `nft delete table FAMILY NAME` (when it exists).
func (c *conn) deleteTable(fam nftables.TableFamily, name string) error {
	where := fmt.Sprintf("ns %s: delete table %s %s", c.ns, familyName(fam), name)
	t, err := c.table(fam, name)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if t == nil {
		return nil
	}
	// Add before delete: if the table vanished meanwhile, the delete still
	// finds one and the batch does not fail.
	t = &nftables.Table{Family: fam, Name: name}
	c.nft.AddTable(t)
	c.nft.DelTable(t)
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// kernelChain is a chain of a table as the kernel holds it, with every
// attribute netlab writes or could find, and its rules.
type kernelChain struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
	policy   *nftables.ChainPolicy
	devices  []string
	// flags are NFTA_CHAIN_FLAGS without NFT_CHAIN_BASE (hardware offload,
	// binding); other lists attributes netlab never writes (counters,
	// userdata).
	flags uint32
	other []string
	rules []kernelRule
}

// kernelRule is a rule as the kernel holds it. err says why its
// expressions could not all be decoded (then exprs is nil).
type kernelRule struct {
	handle uint64
	names  []string // the kernel's expression names, in order
	exprs  []expr.Any
	other  []string // attributes netlab never writes (userdata, compat)
	err    error
}

// contents is what observe read of a table: the chains netlab may have
// written, with their rules, and what in it netlab did not write.
type contents struct {
	chains  []*kernelChain
	foreign []string
}

// observe reads the table of family fam called name: nil if it does not
// exist. Chains for which ours says no are foreign, as are the table's
// flags (dormant, owner) and its sets, maps, stateful objects and
// flowtables. The caller decides about what is in the chains it keeps.
//
// Equivalent to: `nft --debug=netlink list table FAMILY NAME`.
func (c *conn) observe(fam nftables.TableFamily, name string, ours func(*kernelChain) bool) (*contents, error) {
	kt, err := c.table(fam, name)
	if err != nil || kt == nil {
		return nil, err
	}
	out := &contents{}
	// nftables v0.3.0 decodes NFTA_TABLE_FLAGS and NFTA_TABLE_USE in host
	// byte order (tableFromMsg sets no ByteOrder); they are big-endian.
	if f := netToHost(kt.Flags); f != 0 {
		out.foreign = append(out.foreign, fmt.Sprintf("table flags %#x (dormant or owned)", f))
	}
	chains, err := c.chains(fam, name)
	if err != nil {
		return nil, err
	}
	if use := netToHost(kt.Use); use != uint32(len(chains)) {
		// The kernel counts chains, sets, maps, stateful objects and
		// flowtables in the table's use.
		out.foreign = append(out.foreign, fmt.Sprintf("%d sets, maps, stateful objects or flowtables", int(use)-len(chains)))
	}
	rules, err := c.rules(fam, name)
	if err != nil {
		return nil, err
	}
	for _, ch := range chains {
		if !ours(ch) {
			out.foreign = append(out.foreign, "chain "+ch.describe())
			continue
		}
		ch.rules = rules[ch.name]
		out.chains = append(out.chains, ch)
	}
	return out, nil
}

// isBase reports whether ch is a base chain of type typ at hook with
// priority, policy accept, bound to exactly devices, with nothing netlab
// does not write.
func (ch *kernelChain) isBase(typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority, devices []string) bool {
	return ch.typ == typ &&
		ch.hook != nil && *ch.hook == *hook &&
		ch.priority != nil && *ch.priority == *prio &&
		(ch.policy == nil || *ch.policy == nftables.ChainPolicyAccept) &&
		slices.Equal(ch.devices, devices) && ch.flags == 0 && len(ch.other) == 0
}

func (ch *kernelChain) describe() string {
	s := ch.name
	if ch.hook != nil {
		s += fmt.Sprintf(" (type %s hook %d", ch.typ, *ch.hook)
		if ch.priority != nil {
			s += fmt.Sprintf(" priority %d", *ch.priority)
		}
		if len(ch.devices) > 0 {
			s += fmt.Sprintf(" devices %q", ch.devices)
		}
		if ch.policy != nil && *ch.policy == nftables.ChainPolicyDrop {
			s += " policy drop"
		}
		if ch.flags != 0 {
			s += fmt.Sprintf(" flags %#x", ch.flags)
		}
		s += ")"
	}
	if len(ch.other) > 0 {
		s += fmt.Sprintf(" with %q", ch.other)
	}
	return s
}

// dump sends one nftables dump request of family fam in the conn's
// namespace over a raw netfilter socket: google/nftables v0.3.0 reads
// neither a chain's devices and flags nor the expressions it does not know
// (it drops them from a rule silently), and observe must see all of them.
func (c *conn) dump(msg uint16, fam nftables.TableFamily, attrs []netlink.Attribute) ([]netlink.Message, error) {
	if c.raw == nil {
		nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(c.h)})
		if err != nil {
			return nil, fmt.Errorf("open netfilter socket: %w", err)
		}
		c.raw = nl
	}
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	return c.raw.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg),
			Flags: netlink.Request | netlink.Dump,
		},
		// struct nfgenmsg: family, version, res_id (big-endian)
		Data: append([]byte{byte(fam), unix.NFNETLINK_V0, 0, 0}, data...),
	})
}

// decoder returns an attribute decoder of a dumped message's attributes,
// after its nfgenmsg.
func decoder(m netlink.Message) (*netlink.AttributeDecoder, error) {
	if len(m.Data) < 4 {
		return nil, fmt.Errorf("short message: %d bytes", len(m.Data))
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	return ad, nil
}

// chains reads the chains of the table, with every attribute.
//
// Equivalent to: `nft --debug=netlink list chains FAMILY` (of the table).
func (c *conn) chains(fam nftables.TableFamily, table string) ([]*kernelChain, error) {
	// The kernel dumps every chain of the family; the table is picked here.
	msgs, err := c.dump(unix.NFT_MSG_GETCHAIN, fam, nil)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []*kernelChain
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, fmt.Errorf("decode chain: %w", err)
		}
		ch := &kernelChain{}
		var tbl string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				tbl = ad.String()
			case unix.NFTA_CHAIN_NAME:
				ch.name = ad.String()
			case unix.NFTA_CHAIN_TYPE:
				ch.typ = nftables.ChainType(ad.String())
			case unix.NFTA_CHAIN_POLICY:
				p := nftables.ChainPolicy(ad.Uint32())
				ch.policy = &p
			case unix.NFTA_CHAIN_HOOK:
				ad.Nested(ch.decodeHook)
			case nftaChainFlags:
				ch.flags = ad.Uint32() &^ nftChainBase
			case unix.NFTA_CHAIN_COUNTERS:
				ch.other = append(ch.other, "counters")
			case nftaChainUserdata:
				ch.other = append(ch.other, "userdata")
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode chain: %w", err)
		}
		if tbl == table {
			out = append(out, ch)
		}
	}
	return out, nil
}

// decodeHook reads NFTA_CHAIN_HOOK. Kernels that know NFTA_HOOK_DEVS list
// a netdev chain's devices there and repeat a lone device in NFTA_HOOK_DEV
// for older readers; older kernels send NFTA_HOOK_DEV alone.
func (ch *kernelChain) decodeHook(ad *netlink.AttributeDecoder) error {
	var dev string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_HOOK_HOOKNUM:
			h := nftables.ChainHook(ad.Uint32())
			ch.hook = &h
		case unix.NFTA_HOOK_PRIORITY:
			p := nftables.ChainPriority(int32(ad.Uint32()))
			ch.priority = &p
		case unix.NFTA_HOOK_DEV:
			dev = ad.String()
		case nftaHookDevs:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == nftaDeviceName {
						ch.devices = append(ch.devices, nad.String())
					}
				}
				return nil
			})
		}
	}
	if len(ch.devices) == 0 && dev != "" {
		ch.devices = []string{dev}
	}
	return nil
}

// rules reads every rule of the table, by chain, with all their
// expressions: one the driver cannot decode leaves the rule's err set.
//
// Equivalent to: `nft --debug=netlink list table FAMILY TABLE`.
func (c *conn) rules(fam nftables.TableFamily, table string) (map[string][]kernelRule, error) {
	msgs, err := c.dump(unix.NFT_MSG_GETRULE, fam, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
	})
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := make(map[string][]kernelRule)
	for _, m := range msgs {
		ad, err := decoder(m)
		if err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		var r kernelRule
		var tbl, chn string
		var raw [][]byte
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				tbl = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chn = ad.String()
			case unix.NFTA_RULE_HANDLE:
				r.handle = ad.Uint64()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						if nad.Type() == unix.NFTA_LIST_ELEM {
							raw = append(raw, nad.Bytes())
						}
					}
					return nil
				})
			case unix.NFTA_RULE_USERDATA:
				r.other = append(r.other, "userdata")
			case unix.NFTA_RULE_COMPAT:
				r.other = append(r.other, "compat")
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		if tbl != table {
			continue
		}
		r.names, r.exprs, r.err = decodeRaw(byte(fam), raw)
		out[chn] = append(out[chn], r)
	}
	return out, nil
}

// decoded returns the rule's expressions, or why the rule cannot be
// netlab's whatever they are: an expression netlab never writes, or an
// attribute (userdata, compat).
func (r kernelRule) decoded() ([]expr.Any, error) {
	if r.err != nil {
		return nil, r.err
	}
	if len(r.other) > 0 {
		return nil, fmt.Errorf("%w: rule with %v", errNotOurs, r.other)
	}
	return r.exprs, nil
}

// describe is a rule netlab did not write, for a table's foreign list.
func (r kernelRule) describe(why error) string {
	return fmt.Sprintf("rule handle %d: expressions %v: %v", r.handle, r.names, why)
}

// errNotOurs marks a rule or chain netlab did not write.
var errNotOurs = errors.New("not netlab's")

// decodeRaw decodes a rule's expressions (each the attributes of one
// NFTA_LIST_ELEM) into google/nftables types: only the kinds netlab
// writes. Any other kind is an error wrapping errNotOurs; names are all
// the kernel's expression names, decoded or not.
func decodeRaw(fam byte, raw [][]byte) (names []string, exprs []expr.Any, err error) {
	for _, b := range raw {
		name, data, derr := splitExpr(b)
		names = append(names, name)
		if err != nil {
			continue
		}
		if derr != nil {
			err = derr
			continue
		}
		e, derr := decodeExpr(fam, name, data)
		if derr != nil {
			err = fmt.Errorf("expression %d (%s): %w", len(names), name, derr)
			continue
		}
		exprs = append(exprs, e)
	}
	if err != nil {
		return names, nil, err
	}
	return names, exprs, nil
}

// splitExpr returns an expression's name and data attributes.
func splitExpr(b []byte) (name string, data []byte, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", nil, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	return name, data, ad.Err()
}

// decodeExpr decodes one expression of a kind netlab writes.
func decodeExpr(fam byte, name string, data []byte) (expr.Any, error) {
	var e expr.Any
	switch name {
	case "meta":
		e = &expr.Meta{}
	case "cmp":
		e = &expr.Cmp{}
	case "payload":
		e = &expr.Payload{}
	case "bitwise":
		e = &expr.Bitwise{}
	case "counter":
		e = &expr.Counter{}
	case "masq":
		e = &expr.Masq{}
	case "numgen":
		e = &expr.Numgen{}
	case "byteorder":
		// google/nftables v0.3.0 cannot unmarshal byteorder.
		return decodeByteorder(data)
	case "immediate":
		imm := &expr.Immediate{}
		if err := expr.Unmarshal(fam, data, imm); err != nil {
			return nil, err
		}
		if imm.Register != unix.NFT_REG_VERDICT {
			return nil, fmt.Errorf("%w: immediate to register %d", errNotOurs, imm.Register)
		}
		e = &expr.Verdict{}
	default:
		return nil, errNotOurs
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// decodeByteorder reads NFTA_BYTEORDER_* (linux/netfilter/nf_tables.h).
func decodeByteorder(data []byte) (*expr.Byteorder, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	b := &expr.Byteorder{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_BYTEORDER_SREG:
			b.SourceRegister = ad.Uint32()
		case unix.NFTA_BYTEORDER_DREG:
			b.DestRegister = ad.Uint32()
		case unix.NFTA_BYTEORDER_OP:
			b.Op = expr.ByteorderOp(ad.Uint32())
		case unix.NFTA_BYTEORDER_LEN:
			b.Len = ad.Uint32()
		case unix.NFTA_BYTEORDER_SIZE:
			b.Size = ad.Uint32()
		}
	}
	return b, ad.Err()
}

// netToHost undoes a big-endian u32 decoded in host byte order.
func netToHost(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}

// familyName is nft's name of a table family.
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
