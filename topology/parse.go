package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize is the largest topology file netlab reads. Real labs are a few
// kilobytes; the bound keeps a wrong path (a disk image, /dev/zero) from
// eating memory.
const MaxFileSize = 4 << 20

// maxDepth bounds YAML nesting. The format itself is at most seven levels
// deep; anything much deeper is a mistake or an attack on the parser.
const maxDepth = 32

// MTU bounds: 68 is the IPv4 minimum (RFC 791), 65535 the largest MTU Linux
// accepts on a veth, and below 1280 the kernel disables IPv6 on a device.
const (
	minMTU     = 68
	maxMTU     = 65535
	minIPv6MTU = 1280
)

// OpenFlow port numbers a user may request: 0xff00 and above are reserved
// by OpenFlow (LOCAL, CONTROLLER, ...).
const (
	minOFPort = 1
	maxOFPort = 65279
)

// Load reads a topology file and parses it. The path is kept in Lab.File and
// in every error, so messages point into the file the user wrote.
func Load(path string) (*Lab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses, validates and defaults a topology. file names the source in
// errors and in Lab.File. On any problem it returns an ErrorList holding every
// error found, sorted by position; it never panics, whatever the input.
//
// The YAML is walked as a node tree rather than decoded into structs:
// yaml.v3 loses its strictness inside custom unmarshalers, and only the tree
// carries the line and column of every value.
func Parse(file string, data []byte) (*Lab, error) {
	p := &parser{file: file}
	lab := p.parse(data)
	if len(p.errs) > 0 {
		return nil, p.errs.sortAndDedup()
	}
	return lab, nil
}

// parser holds one parse: the errors found so far and, per object, the
// positions and raw values derivation and validation need after the walk.
type parser struct {
	file string
	errs ErrorList

	lab     *Lab
	host    *nsInfo
	nss     []*nsInfo // lab namespaces, in file order
	bridges []*bridgeInfo
	byKey   map[ifKey]*ifaceInfo // every described interface, by namespace and name
	impairs []*Impairment        // impair: blocks, in file order
}

// nsInfo is a namespace (or the host) with what the walk learned about it.
type nsInfo struct {
	ns      *Namespace
	machine []machineRef // machine: as written
	path    string       // "host" or "namespaces.<name>"
	ifaces  []*ifaceInfo
	routes  []*routeInfo
	addrBad bool // an address failed to parse: skip checks that need them all
}

// ifaceInfo is an interface entry with its raw peer and value positions.
type ifaceInfo struct {
	iface   *Interface
	ns      *nsInfo
	path    string
	peer    string // as written
	peerPos Pos
	peerSet bool // peer was written and is a string
	peerBad bool // peer was written but is not a string
	addrPos []Pos

	target   End  // peer, resolved
	targetOK bool // target is usable
	linked   bool // part of a Link already
	vni      *entry
}

// bridgeInfo is a bridge entry with its raw per-port settings.
type bridgeInfo struct {
	b        *Bridge
	path     string
	addrPos  []Pos
	ovsOnly  []entry // fail-mode, datapath: errors on a Linux bridge
	settings []*portSetting
	portType *entry // nil when not written
	addrBad  bool
	machines []machineRef // machine: or machines: as written
	vni      *entry
}

// portSetting is one entry of a bridge's ports: map.
type portSetting struct {
	name      string
	path      string
	pos       Pos
	ofport    int
	ofportKey *entry // nil when not written
}

// routeInfo is a parsed route with the positions its checks report at.
type routeInfo struct {
	r      Route
	path   string
	viaPos Pos
	devPos Pos
	ok     bool // every field parsed
}

// entry is one key: value pair of a YAML mapping.
type entry struct {
	key  string
	k, v *yaml.Node
	path string
}

// section lists the keys one kind of mapping accepts, and the keys reserved
// for later versions of the format. The schema test holds
// docs/netlab.schema.json to these lists.
type section struct {
	known    []string
	reserved []string
}

// Sections of the format, by the name their definition has in the schema.
func sections() map[string]section {
	return map[string]section{
		"lab":       {known: []string{"name", "machines", "host", "bridges", "namespaces", "expect"}},
		"machine":   {known: []string{"address", "interface"}},
		"expect":    {known: []string{"from", "to", "ping", "tcp", "udp", "reachable"}},
		"host":      {known: []string{"sysctls", "routes", "interfaces", "nat"}},
		"nat":       {known: []string{"source", "out"}},
		"bridge":    {known: []string{"type", "fail-mode", "datapath", "port-type", "addresses", "mtu", "ports", "openflow", "flows", "external", "machine", "machines", "vni"}},
		"openflow":  {known: []string{"preset", "idle-timeout"}},
		"port":      {known: []string{"ofport", "impair"}},
		"impair":    {known: []string{"rate", "delay", "jitter", "loss", "duplicate", "corrupt", "reorder", "limit"}},
		"namespace": {known: []string{"machine", "interfaces", "routes", "sysctls", "nat", "tuns", "taps"}},
		"tun":       {known: []string{"reflector", "udp", "queues", "cpus", "mtu", "addresses", "routes", "log"}},
		"udp":       {known: []string{"listen", "send", "namespace"}},
		"tap":       {known: []string{"owner", "group", "mac", "multi-queue", "vnet-hdr", "mtu", "addresses", "impair"}},
		"interface": {known: []string{"peer", "addresses", "mac", "mtu", "vni", "impair"}},
		"route":     {known: []string{"to", "via", "dev", "metric"}},
	}
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func (p *parser) errorf(at Pos, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: at, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// join extends a key path. Keys that are not plain words (sysctl names hold
// dots) are quoted so the path stays unambiguous.
func join(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	default:
		return path + "." + key
	}
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// describe names a node's type for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	}
	return "a value tagged " + n.Tag
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// parse runs the whole pipeline; errors land in p.errs.
func (p *parser) parse(data []byte) *Lab {
	if len(data) > MaxFileSize {
		p.errorf(Pos{}, "", "file is larger than %d bytes; a topology is a few kilobytes", MaxFileSize)
		return nil
	}
	root := p.decode(data)
	if root == nil || !p.checkTree(root) {
		return nil
	}
	p.parseLab(root)
	if p.lab == nil {
		return nil
	}
	p.derive()
	p.lab.Impairments = p.impairs
	p.validate()
	p.checkMachines()
	return p.lab
}

// decode turns the bytes into a node tree, accepting exactly one document.
// It returns the document's top node, or nil after recording an error.
func (p *parser) decode(data []byte) (root *yaml.Node) {
	// yaml.v3 reports errors by panicking internally and recovers its own
	// panics; this guard turns any other panic of the library into an error
	// so no input can crash netlab.
	defer func() {
		if r := recover(); r != nil {
			p.errorf(Pos{}, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorf(Pos{}, "", "empty file: want a mapping with at least name:")
		} else {
			p.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.errorf(pos(&extra), "", "second YAML document: a file holds one lab")
		return nil
	case !errors.Is(err, io.EOF):
		p.syntaxError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || isNull(doc.Content[0]) {
		p.errorf(Pos{}, "", "empty file: want a mapping with at least name:")
		return nil
	}
	return doc.Content[0]
}

// syntaxError records a yaml.v3 error, lifting its "line N" into the position.
func (p *parser) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	at := Pos{}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil && n > 0 {
			at.Line = n
			msg = text
		}
	}
	p.errorf(at, "", "YAML syntax: %s", msg)
}

// checkTree rejects what the format never needs and an attacker would use:
// anchors and aliases (exponential "billion laughs" expansion) and deep
// nesting. It walks without recursion, so a deep tree cannot exhaust the
// stack.
func (p *parser) checkTree(root *yaml.Node) bool {
	type item struct {
		n     *yaml.Node
		depth int
	}
	stack := []item{{root, 1}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := it.n
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			p.errorf(pos(n), "", "YAML anchors and aliases (&name, *name, <<: *name) are not supported: write values out")
			return false
		}
		if it.depth > maxDepth {
			p.errorf(pos(n), "", "YAML nested deeper than %d levels", maxDepth)
			return false
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, item{n.Content[i], it.depth + 1})
		}
	}
	return true
}

// entries returns the pairs of a mapping in file order. A null value counts
// as an empty mapping, so "blue:" declares an empty namespace. Non-scalar and
// duplicate keys are errors; yaml.v3 only catches duplicates when decoding
// into Go values, never in a node tree.
func (p *parser) entries(n *yaml.Node, path string) []entry {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(pos(n), path, "want a mapping, got %s", describe(n))
		return nil
	}
	var out []entry
	first := map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(pos(k), path, "keys must be plain words, got %s", describe(k))
			continue
		}
		kp := join(path, k.Value)
		if at, dup := first[k.Value]; dup {
			p.errorf(pos(k), kp, "duplicate key (first at line %d)", at.Line)
			continue
		}
		first[k.Value] = pos(k)
		out = append(out, entry{key: k.Value, k: k, v: v, path: kp})
	}
	return out
}

// fields returns a mapping's pairs by key, rejecting keys the section does
// not know; reserved keys say they belong to a later version, so a file
// written for a newer netlab fails clearly instead of half-working.
func (p *parser) fields(n *yaml.Node, path, name string) map[string]entry {
	sec := sections()[name]
	out := map[string]entry{}
	for _, e := range p.entries(n, path) {
		switch {
		case contains(sec.known, e.key):
			out[e.key] = e
		case contains(sec.reserved, e.key):
			p.errorf(pos(e.k), e.path, "reserved for a later netlab version, not supported yet")
		default:
			p.errorf(pos(e.k), e.path, "unknown key (want one of: %s)", strings.Join(sec.known, ", "))
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str returns a string value; other scalars (numbers, booleans) are errors
// rather than silently converted.
func (p *parser) str(e entry) (string, bool) {
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!str" {
		p.errorf(pos(e.v), e.path, "want a string, got %s", describe(e.v))
		return "", false
	}
	return e.v.Value, true
}

// integer returns an integer value within [lo, hi].
func (p *parser) integer(e entry, lo, hi int64) (int, bool) {
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!int" {
		p.errorf(pos(e.v), e.path, "want an integer, got %s", describe(e.v))
		return 0, false
	}
	var i int64
	if err := e.v.Decode(&i); err != nil || i < lo || i > hi {
		p.errorf(pos(e.v), e.path, "%s is out of range %d..%d", e.v.Value, lo, hi)
		return 0, false
	}
	return int(i), true
}

// list returns the items of a sequence; null is an empty list.
func (p *parser) list(e entry) []*yaml.Node {
	if isNull(e.v) {
		return nil
	}
	if e.v.Kind != yaml.SequenceNode {
		p.errorf(pos(e.v), e.path, "want a list, got %s", describe(e.v))
		return nil
	}
	return e.v.Content
}

// oneOf returns a string value that must be one of the allowed words.
func (p *parser) oneOf(e entry, allowed ...string) (string, bool) {
	s, ok := p.str(e)
	if !ok {
		return "", false
	}
	if !contains(allowed, s) {
		p.errorf(pos(e.v), e.path, "want %s, got %q", strings.Join(allowed, " or "), s)
		return "", false
	}
	return s, true
}

func (p *parser) parseLab(root *yaml.Node) {
	if root.Kind != yaml.MappingNode {
		p.errorf(pos(root), "", "want a mapping with name, bridges and namespaces at the top level, got %s", describe(root))
		return
	}
	lab := &Lab{File: p.file}
	p.lab = lab
	f := p.fields(root, "", "lab")

	if e, ok := f["name"]; ok {
		lab.Pos = pos(e.k)
		if s, ok := p.str(e); ok {
			lab.Name = s
			if msg := checkLabName(s); msg != "" {
				p.errorf(pos(e.v), e.path, "%s", msg)
			}
		}
	} else {
		p.errorf(pos(root), "name", "required: the lab's name, such as name: blue-red")
	}

	if e, ok := f["machines"]; ok {
		p.parseMachines(e)
	}
	p.host = &nsInfo{ns: &Namespace{Name: Host}, path: "host"}
	lab.Host = p.host.ns
	if e, ok := f["host"]; ok {
		p.host.ns.Pos = pos(e.k)
		p.parseNamespaceBody(p.host, e.v, "host")
	}
	if e, ok := f["bridges"]; ok {
		for _, be := range p.entries(e.v, e.path) {
			bi := p.parseBridge(be)
			p.bridges = append(p.bridges, bi)
			lab.Bridges = append(lab.Bridges, bi.b)
		}
	}
	if e, ok := f["namespaces"]; ok {
		for _, ne := range p.entries(e.v, e.path) {
			if msg := checkNamespaceName(ne.key); msg != "" {
				p.errorf(pos(ne.k), ne.path, "%s", msg)
			}
			ni := &nsInfo{ns: &Namespace{Name: ne.key, Pos: pos(ne.k)}, path: ne.path}
			p.parseNamespaceBody(ni, ne.v, "namespace")
			p.nss = append(p.nss, ni)
			lab.Namespaces = append(lab.Namespaces, ni.ns)
		}
	}
	if e, ok := f["expect"]; ok {
		p.parseExpectations(e)
	}
}

// parseExpectations reads the expect: list; names are resolved in
// checkExpectations once every namespace and bridge is known.
func (p *parser) parseExpectations(e entry) {
	for i, item := range p.list(e) {
		path := index(e.path, i)
		x := Expect{Reachable: true, Pos: pos(item), Path: path}
		if item.Kind != yaml.MappingNode {
			p.errorf(pos(item), path, "want a mapping such as {from: blue, to: red, ping: true}, got %s", describe(item))
			continue
		}
		f := p.fields(item, path, "expect")
		ok := len(f) == len(item.Content)/2
		for _, k := range []string{"from", "to"} {
			fe, found := f[k]
			if !found {
				p.errorf(pos(item), join(path, k), "required: a namespace name, or for to: also an address")
				ok = false
				continue
			}
			v, good := p.str(fe)
			if !good {
				ok = false
			}
			if k == "from" {
				x.From, x.fromPos = v, pos(fe.v)
			} else {
				x.To, x.toPos = v, pos(fe.v)
			}
		}
		kinds := 0
		if pe, found := f["ping"]; found {
			kinds++
			if pe.v.Kind != yaml.ScalarNode || pe.v.ShortTag() != "!!bool" || pe.v.Value != "true" {
				p.errorf(pos(pe.v), pe.path, "want ping: true (use reachable: false to expect no reply)")
				ok = false
			}
			x.Ping = true
		}
		if te, found := f["tcp"]; found {
			kinds++
			x.TCP, _ = p.integer(te, 1, 65535)
		}
		if ue, found := f["udp"]; found {
			kinds++
			x.UDP, _ = p.integer(ue, 1, 65535)
		}
		if kinds != 1 {
			p.errorf(pos(item), path, "want exactly one of ping: true, tcp: PORT, udp: PORT")
			ok = false
		}
		if re, found := f["reachable"]; found {
			if re.v.Kind != yaml.ScalarNode || re.v.ShortTag() != "!!bool" {
				p.errorf(pos(re.v), re.path, "want true or false, got %s", describe(re.v))
				ok = false
			} else {
				x.Reachable = re.v.Value == "true"
			}
		}
		if ok {
			p.lab.Expect = append(p.lab.Expect, x)
		}
	}
}

// parseNamespaceBody fills a namespace (section "namespace") or the host
// (section "host"); both hold interfaces, routes and sysctls.
func (p *parser) parseNamespaceBody(ni *nsInfo, n *yaml.Node, sec string) {
	f := p.fields(n, ni.path, sec)
	if e, ok := f["machine"]; ok {
		ni.machine = p.machineRefs(e, false)
	}
	if e, ok := f["interfaces"]; ok {
		for _, ie := range p.entries(e.v, e.path) {
			ii := p.parseInterface(ie, ni)
			ni.ifaces = append(ni.ifaces, ii)
			ni.ns.Interfaces = append(ni.ns.Interfaces, ii.iface)
		}
	}
	if e, ok := f["routes"]; ok {
		for i, item := range p.list(e) {
			ri := p.parseRoute(item, index(e.path, i))
			ni.routes = append(ni.routes, ri)
			if ri.ok {
				ni.ns.Routes = append(ni.ns.Routes, ri.r)
			}
		}
	}
	if e, ok := f["sysctls"]; ok {
		for _, se := range p.entries(e.v, e.path) {
			if s, ok := p.parseSysctl(se); ok {
				ni.ns.Sysctls = append(ni.ns.Sysctls, s)
			}
		}
	}
	if e, ok := f["nat"]; ok {
		for i, item := range p.list(e) {
			if r, ok := p.parseNAT(item, index(e.path, i)); ok {
				ni.ns.NAT = append(ni.ns.NAT, r)
			}
		}
	}
	if e, ok := f["tuns"]; ok {
		for _, te := range p.entries(e.v, e.path) {
			ni.ns.TUNs = append(ni.ns.TUNs, p.parseTUN(te, ni.ns.Name))
		}
	}
	if e, ok := f["taps"]; ok {
		for _, te := range p.entries(e.v, e.path) {
			ni.ns.TAPs = append(ni.ns.TAPs, p.parseTAP(te, ni.ns.Name))
		}
	}
}

// parseTUN reads a TUN device: a reflector, a TUN<->UDP bridge, or a plain
// persistent TUN for the user's own program.
func (p *parser) parseTUN(e entry, ns string) *TUN {
	t := &TUN{Name: e.key, NS: ns, Pos: pos(e.k), Path: e.path}
	if msg := checkIfName(e.key, "tun"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	}
	f := p.fields(e.v, e.path, "tun")
	if re, ok := f["reflector"]; ok {
		t.Reflector, _ = p.boolean(re)
	}
	if ue, ok := f["udp"]; ok {
		t.UDP = &UDPBridge{Pos: pos(ue.k)}
		uf := p.fields(ue.v, ue.path, "udp")
		for _, k := range []string{"listen", "send"} {
			ke, found := uf[k]
			if !found {
				p.errorf(pos(ue.v), join(ue.path, k), "required: an address and port such as 127.0.0.1:12345")
				continue
			}
			s, good := p.str(ke)
			if !good {
				continue
			}
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 {
				p.errorf(pos(ke.v), ke.path, "want an address and port such as 127.0.0.1:12345 or [::1]:12345, got %q", s)
				continue
			}
			if k == "listen" {
				t.UDP.Listen = ap
			} else {
				t.UDP.Send = ap
			}
		}
		if ne, found := uf["namespace"]; found {
			if s, good := p.str(ne); good {
				t.UDP.Namespace, t.UDP.nsPos = s, pos(ne.v)
			}
		}
		if t.Reflector {
			p.errorf(pos(ue.k), ue.path, "a TUN is either a reflector or a UDP bridge, not both")
		}
	}
	if qe, ok := f["queues"]; ok {
		t.Queues, _ = p.integer(qe, 1, MaxQueues)
		if !t.Reflector {
			p.errorf(pos(qe.k), qe.path, "queues: only reflectors read a TUN with several queues")
		}
	}
	if ce, ok := f["cpus"]; ok {
		t.CPUs, t.CPUsPos = p.cpus(ce), pos(ce.v)
		if !t.Supervised() {
			p.errorf(pos(ce.k), ce.path, "cpus: only a reflector or a UDP bridge runs a process to place on CPUs")
		}
	}
	if me, ok := f["mtu"]; ok {
		t.MTU, _ = p.integer(me, minMTU, maxMTU)
	}
	if ae, ok := f["addresses"]; ok {
		t.Addresses, _, _ = p.addresses(ae)
	}
	if re, ok := f["routes"]; ok {
		for i, item := range p.list(re) {
			path := index(re.path, i)
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
				p.errorf(pos(item), path, "want a prefix routed to the device, such as 10.200.0.0/16, got %s", describe(item))
				continue
			}
			pfx, msg := parseDestination(item.Value)
			if msg != "" {
				p.errorf(pos(item), path, "%s", strings.Replace(msg, ", or default", "", 1))
				continue
			}
			t.Routes = append(t.Routes, pfx)
		}
	}
	if le, ok := f["log"]; ok {
		t.Log, _ = p.boolean(le)
		if !t.Reflector {
			p.errorf(pos(le.k), le.path, "log: only reflectors log packets")
		}
	}
	return t
}

// cpus reads a list of CPU numbers, each once, and returns them sorted.
func (p *parser) cpus(e entry) []int {
	items := p.list(e)
	if len(items) == 0 {
		if e.v.Kind == yaml.SequenceNode || isNull(e.v) {
			p.errorf(pos(e.v), e.path, "want at least one CPU number, such as [1]")
		}
		return nil
	}
	var out []int
	seen := map[int]bool{}
	for i, item := range items {
		path := index(e.path, i)
		c, ok := p.integer(entry{k: item, v: item, path: path}, 0, MaxCPU)
		if !ok {
			continue
		}
		if seen[c] {
			p.errorf(pos(item), path, "CPU %d is listed twice", c)
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// parseTAP reads a persistent TAP device that a user's program attaches to.
func (p *parser) parseTAP(e entry, ns string) *TAP {
	t := &TAP{Name: e.key, NS: ns, Owner: -1, Group: -1, Pos: pos(e.k), Path: e.path}
	if msg := checkIfName(e.key, "tap"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	}
	f := p.fields(e.v, e.path, "tap")
	if oe, ok := f["owner"]; ok {
		t.Owner, _ = p.integer(oe, 0, 1<<31-1)
	}
	if ge, ok := f["group"]; ok {
		t.Group, _ = p.integer(ge, 0, 1<<31-1)
	}
	if me, ok := f["mac"]; ok {
		if s, good := p.str(me); good {
			mac, msg := parseMAC(s)
			if msg != "" {
				p.errorf(pos(me.v), me.path, "%s", msg)
			} else {
				t.MAC = mac
			}
		}
	}
	if qe, ok := f["multi-queue"]; ok {
		t.MultiQueue, _ = p.boolean(qe)
	}
	if ve, ok := f["vnet-hdr"]; ok {
		t.VnetHdr, _ = p.boolean(ve)
	}
	if me, ok := f["mtu"]; ok {
		t.MTU, _ = p.integer(me, minMTU, maxMTU)
	}
	if ae, ok := f["addresses"]; ok {
		t.Addresses, _, _ = p.addresses(ae)
	}
	if ie, ok := f["impair"]; ok {
		p.addImpair(p.parseImpair(ie, ns, t.Name))
	}
	return t
}

// boolean returns a true/false value.
func (p *parser) boolean(e entry) (bool, bool) {
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!bool" {
		p.errorf(pos(e.v), e.path, "want true or false, got %s", describe(e.v))
		return false, false
	}
	return e.v.Value == "true", true
}

// parseNAT reads {source: 10.0.0.0/24, out: wan0}.
func (p *parser) parseNAT(n *yaml.Node, path string) (NATRule, bool) {
	r := NATRule{Pos: pos(n), Path: path}
	if n.Kind != yaml.MappingNode {
		p.errorf(pos(n), path, "want a mapping such as {source: 10.0.0.0/24, out: wan0}, got %s", describe(n))
		return r, false
	}
	f := p.fields(n, path, "nat")
	ok := len(f) == len(n.Content)/2
	if e, found := f["source"]; !found {
		p.errorf(pos(n), join(path, "source"), "required: the prefix to masquerade, such as 10.0.0.0/24")
		ok = false
	} else if s, good := p.str(e); !good {
		ok = false
	} else if pfx, msg := parseDestination(s); msg != "" {
		p.errorf(pos(e.v), e.path, "%s", strings.Replace(msg, ", or default", "", 1))
		ok = false
	} else {
		r.Source = pfx
	}
	if e, found := f["out"]; !found {
		p.errorf(pos(n), join(path, "out"), "required: the interface traffic leaves through, such as wan0")
		ok = false
	} else if s, good := p.str(e); !good {
		ok = false
	} else if msg := checkIfName(s, "interface"); msg != "" {
		p.errorf(pos(e.v), e.path, "%s", msg)
		ok = false
	} else {
		r.Out, r.outPos = s, pos(e.v)
	}
	return r, ok
}

func (p *parser) parseInterface(e entry, ni *nsInfo) *ifaceInfo {
	ii := &ifaceInfo{
		iface: &Interface{Name: e.key, NS: ni.ns.Name, Pos: pos(e.k)},
		ns:    ni,
		path:  e.path,
	}
	if msg := checkIfName(e.key, "interface"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	} else if e.key == "lo" {
		p.errorf(pos(e.k), e.path, "lo is the loopback device every namespace already has")
	}
	f := p.fields(e.v, e.path, "interface")
	if pe, ok := f["peer"]; ok {
		if s, ok := p.str(pe); ok {
			ii.peer, ii.peerPos, ii.peerSet = s, pos(pe.v), true
		} else {
			ii.peerBad = true
		}
	}
	if ae, ok := f["addresses"]; ok {
		var bad bool
		ii.iface.Addresses, ii.addrPos, bad = p.addresses(ae)
		ni.addrBad = ni.addrBad || bad
	}
	if me, ok := f["mac"]; ok {
		if s, ok := p.str(me); ok {
			mac, msg := parseMAC(s)
			if msg != "" {
				p.errorf(pos(me.v), me.path, "%s", msg)
			}
			ii.iface.MAC = mac
		}
	}
	if me, ok := f["mtu"]; ok {
		ii.iface.MTU, _ = p.integer(me, minMTU, maxMTU)
		p.checkIPv6MTU(me, ii.iface.MTU, ii.iface.Addresses)
	}
	if ve, ok := f["vni"]; ok {
		ii.iface.VNI, _ = p.integer(ve, minVNI, maxVNI)
		ii.vni = &ve
	}
	if ie, ok := f["impair"]; ok {
		p.addImpair(p.parseImpair(ie, ni.ns.Name, e.key))
	}
	return ii
}

// addImpair keeps a parsed impair: block (nil: empty or invalid).
func (p *parser) addImpair(im *Impairment) {
	if im != nil {
		p.impairs = append(p.impairs, im)
	}
}

// checkIPv6MTU catches an MTU too small for IPv6 on a device that has IPv6
// addresses: the kernel would silently disable IPv6 there.
func (p *parser) checkIPv6MTU(e entry, mtu int, addrs []netip.Prefix) {
	if mtu == 0 || mtu >= minIPv6MTU {
		return
	}
	for _, a := range addrs {
		if a.Addr().Is6() {
			p.errorf(pos(e.v), e.path, "%d is below %d, the IPv6 minimum, and %s is an IPv6 address", mtu, minIPv6MTU, a)
			return
		}
	}
}

// addresses parses a list of interface addresses. They are written with the
// host part (10.0.0.1/24) and kept that way: the prefix length gives the
// connected route, the address is what the interface answers to.
func (p *parser) addresses(e entry) (out []netip.Prefix, at []Pos, bad bool) {
	for i, item := range p.list(e) {
		path := index(e.path, i)
		s, ok := p.str(entry{k: item, v: item, path: path})
		if !ok {
			bad = true
			continue
		}
		pfx, msg := parseAddress(s)
		if msg != "" {
			p.errorf(pos(item), path, "%s", msg)
			bad = true
			continue
		}
		out = append(out, pfx)
		at = append(at, pos(item))
	}
	if e.v.Kind != yaml.SequenceNode && !isNull(e.v) {
		bad = true
	}
	return out, at, bad
}

func parseAddress(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: missing /prefix-length, such as %s/24", s, s)
		}
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q", s)
	}
	a := pfx.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, fmt.Sprintf("%s is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Prefix{}, fmt.Sprintf("%s is not a unicast address", s)
	}
	return pfx, ""
}

func parseMAC(s string) (net.HardwareAddr, string) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6:
		return nil, fmt.Sprintf("invalid MAC address %q: want 6 bytes, such as 02:00:00:00:00:01", s)
	case mac[0]&1 == 1:
		return nil, fmt.Sprintf("%s is a multicast MAC address: the first byte must be even", mac)
	case bytes.Equal(mac, make([]byte, 6)):
		return nil, "00:00:00:00:00:00 is not a usable MAC address"
	}
	return mac, ""
}

func (p *parser) parseRoute(n *yaml.Node, path string) *routeInfo {
	ri := &routeInfo{path: path, r: Route{Pos: pos(n)}}
	if n.Kind != yaml.MappingNode {
		p.errorf(pos(n), path, "want a mapping such as {to: default, via: 10.0.0.254}, got %s", describe(n))
		return ri
	}
	ok := true
	f := p.fields(n, path, "route")
	if len(f) != len(n.Content)/2 {
		ok = false // a key was unknown or duplicate
	}
	var isDefault bool
	var toEntry entry
	if e, found := f["to"]; found {
		toEntry = e
		if s, good := p.str(e); !good {
			ok = false
		} else if s == "default" {
			isDefault = true
		} else if pfx, msg := parseDestination(s); msg != "" {
			p.errorf(pos(e.v), e.path, "%s", msg)
			ok = false
		} else {
			ri.r.To = pfx
		}
	} else {
		p.errorf(pos(n), join(path, "to"), "required: a destination CIDR such as 10.9.0.0/16, or default")
		ok = false
	}
	if e, found := f["via"]; found {
		ri.viaPos = pos(e.v)
		if s, good := p.str(e); !good {
			ok = false
		} else if a, msg := parseGateway(s); msg != "" {
			p.errorf(pos(e.v), e.path, "%s", msg)
			ok = false
		} else {
			ri.r.Via = a
		}
	}
	if e, found := f["dev"]; found {
		ri.devPos = pos(e.v)
		if s, good := p.str(e); !good {
			ok = false
		} else if msg := checkIfName(s, "device"); msg != "" {
			p.errorf(pos(e.v), e.path, "%s", msg)
			ok = false
		} else {
			ri.r.Dev = s
		}
	}
	if e, found := f["metric"]; found {
		var good bool
		if ri.r.Metric, good = p.integer(e, 0, 1<<32-1); !good {
			ok = false
		}
	}
	if !ok {
		return ri
	}
	via := ri.r.Via
	switch {
	case isDefault && !via.IsValid():
		p.errorf(pos(toEntry.v), toEntry.path, "default needs via: the gateway's family picks 0.0.0.0/0 or ::/0")
		ok = false
	case isDefault && via.Is4():
		ri.r.To = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case isDefault:
		ri.r.To = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	case !via.IsValid() && ri.r.Dev == "":
		p.errorf(pos(n), path, "a route needs via, dev or both")
		ok = false
	case via.IsValid() && via.Is4() != ri.r.To.Addr().Is4():
		p.errorf(ri.viaPos, join(path, "via"), "gateway %s is %s but destination %s is %s", via, family(via), ri.r.To, family(ri.r.To.Addr()))
		ok = false
	}
	ri.ok = ok
	return ri
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// parseDestination parses a route's to: a network in masked form. A host
// part there is almost always an address pasted by mistake, so it is named.
func parseDestination(s string) (netip.Prefix, string) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: want a network such as 10.9.0.0/16, or default", s)
	}
	if pfx.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%s is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", s)
	}
	if m := pfx.Masked(); m != pfx {
		return netip.Prefix{}, fmt.Sprintf("%s has host bits set: write the network, %s", s, m)
	}
	return pfx, ""
}

func parseGateway(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Sprintf("invalid gateway address %q", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Sprintf("gateway %s has a zone: name the device with dev instead", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Sprintf("%s is an IPv4-mapped IPv6 address: write the IPv4 address", s)
	case a.IsUnspecified() || a.IsMulticast():
		return netip.Addr{}, fmt.Sprintf("gateway %s is not a unicast address", s)
	}
	return a, ""
}

// parseSysctl reads one "key: value" sysctl. Booleans become 1 and 0, the
// way the kernel spells them.
func (p *parser) parseSysctl(e entry) (Sysctl, bool) {
	ok := true
	if msg := checkSysctlKey(e.key); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
		ok = false
	}
	s := Sysctl{Key: e.key, Pos: pos(e.k)}
	v := e.v
	switch {
	case v.Kind != yaml.ScalarNode:
		p.errorf(pos(v), e.path, "want an integer, string or boolean, got %s", describe(v))
		return s, false
	case v.ShortTag() == "!!int":
		var i int64
		if err := v.Decode(&i); err != nil {
			p.errorf(pos(v), e.path, "%s is out of range for a 64-bit integer", v.Value)
			return s, false
		}
		s.Value = strconv.FormatInt(i, 10)
	case v.ShortTag() == "!!bool":
		var b bool
		if err := v.Decode(&b); err != nil {
			p.errorf(pos(v), e.path, "invalid boolean %q", v.Value)
			return s, false
		}
		s.Value = "0"
		if b {
			s.Value = "1"
		}
	case v.ShortTag() == "!!str":
		if strings.TrimSpace(v.Value) == "" || strings.ContainsAny(v.Value, "\n\r\x00") {
			p.errorf(pos(v), e.path, "want a value on one line, got %q", v.Value)
			return s, false
		}
		s.Value = v.Value
	default:
		p.errorf(pos(v), e.path, "want an integer, string or boolean, got %s", describe(v))
		return s, false
	}
	return s, ok
}

func (p *parser) parseBridge(e entry) *bridgeInfo {
	b := &Bridge{Name: e.key, Type: BridgeOVS, Pos: pos(e.k)}
	bi := &bridgeInfo{b: b, path: e.path}
	if msg := checkIfName(e.key, "bridge"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	} else if e.key == Host {
		p.errorf(pos(e.k), e.path, "host names the root namespace in peers (host/<ifname>); pick another bridge name")
	}
	f := p.fields(e.v, e.path, "bridge")
	if te, ok := f["type"]; ok {
		if t, ok := p.oneOf(te, BridgeOVS, BridgeLinux); ok {
			b.Type = t
		}
	}
	if fe, ok := f["fail-mode"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, fe)
		if m, ok := p.oneOf(fe, FailStandalone, FailSecure); ok {
			b.FailMode = m
		}
	}
	if de, ok := f["datapath"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, de)
		if d, ok := p.oneOf(de, DatapathNetdev, DatapathSystem); ok {
			b.Datapath = d
		}
	}
	if pe, ok := f["port-type"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, pe)
		bi.portType = &pe
		if t, ok := p.oneOf(pe, PortTypeAuto, PortTypeSystem, PortTypeAFXDPNonPMD, PortTypeAFXDP); ok {
			b.PortType = t
		}
	}
	if ae, ok := f["addresses"]; ok {
		b.Addresses, bi.addrPos, bi.addrBad = p.addresses(ae)
	}
	if me, ok := f["mtu"]; ok {
		b.MTU, _ = p.integer(me, minMTU, maxMTU)
		p.checkIPv6MTU(me, b.MTU, b.Addresses)
	}
	if pe, ok := f["ports"]; ok {
		for _, se := range p.entries(pe.v, pe.path) {
			ps := &portSetting{name: se.key, path: se.path, pos: pos(se.k)}
			pf := p.fields(se.v, se.path, "port")
			if oe, ok := pf["ofport"]; ok {
				ps.ofportKey = &oe
				ps.ofport, _ = p.integer(oe, minOFPort, maxOFPort)
			}
			if ie, ok := pf["impair"]; ok {
				// The bridge side of the veth: the port in the host namespace.
				p.addImpair(p.parseImpair(ie, Host, se.key))
			}
			bi.settings = append(bi.settings, ps)
		}
	}
	if oe, ok := f["openflow"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, oe)
		p.parseOpenFlow(oe, b)
	}
	if me, ok := f["machine"]; ok {
		bi.machines = p.machineRefs(me, false)
	}
	if me, ok := f["machines"]; ok {
		if bi.machines != nil {
			p.errorf(pos(me.k), me.path, "give machine: or machines:, not both")
		}
		bi.machines = p.machineRefs(me, true)
	}
	if ve, ok := f["vni"]; ok {
		b.VNI, _ = p.integer(ve, minVNI, maxVNI)
		bi.vni = &ve
	}
	if fe, ok := f["flows"]; ok {
		bi.ovsOnly = append(bi.ovsOnly, fe)
		for i, item := range p.list(fe) {
			path := index(fe.path, i)
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
				p.errorf(pos(item), path, "want a flow in ovs-ofctl syntax as a string, got %s", describe(item))
				continue
			}
			if msg := checkFlowText(item.Value); msg != "" {
				p.errorf(pos(item), path, "%s", msg)
				continue
			}
			b.Flows = append(b.Flows, Flow{Text: item.Value, Pos: pos(item), Path: path})
		}
	}
	if xe, ok := f["external"]; ok {
		for i, item := range p.list(xe) {
			path := index(xe.path, i)
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
				p.errorf(pos(item), path, "want an interface name, got %s", describe(item))
				continue
			}
			if msg := checkIfName(item.Value, "interface"); msg != "" {
				p.errorf(pos(item), path, "%s", msg)
				continue
			}
			b.External = append(b.External, ExternalPort{Name: item.Value, Pos: pos(item), Path: path})
		}
	}
	if b.Type == BridgeOVS {
		if b.FailMode == "" {
			b.FailMode = FailStandalone
		}
		if b.PortType == "" {
			b.PortType = PortTypeAuto
		}
		return bi
	}
	b.FailMode, b.PortType = "", ""
	for _, oe := range bi.ovsOnly {
		p.errorf(pos(oe.k), oe.path, "only Open vSwitch bridges have %s; this bridge is type: linux", oe.key)
	}
	for _, ps := range bi.settings {
		if ps.ofportKey != nil {
			p.errorf(pos(ps.ofportKey.k), ps.ofportKey.path, "only Open vSwitch bridges have OpenFlow port numbers; this bridge is type: linux")
		}
	}
	return bi
}

// checkLabName returns why a lab name is unusable, or "". Lab names end up
// in nftables table names, markers and derived interface names, hence the
// small alphabet and length.
func checkLabName(s string) string {
	switch {
	case s == "":
		return "required: the lab's name, such as name: blue-red"
	case len(s) > MaxLabName:
		return fmt.Sprintf("lab name %q is %d characters; at most %d", s, len(s), MaxLabName)
	case !(s[0] >= 'a' && s[0] <= 'z') || !allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789-"):
		return fmt.Sprintf("lab name %q: use a-z, 0-9 and -, starting with a letter", s)
	}
	return ""
}

// maxNamespaceName keeps namespace names short enough for /run/netns paths
// and markers while leaving room for readable names.
const maxNamespaceName = 32

func checkNamespaceName(s string) string {
	switch {
	case s == "":
		return "empty namespace name"
	case len(s) > maxNamespaceName:
		return fmt.Sprintf("namespace name %q is %d characters; at most %d", s, len(s), maxNamespaceName)
	case !allIn(s[:1], "abcdefghijklmnopqrstuvwxyz0123456789") || !allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-"):
		return fmt.Sprintf("namespace name %q: use a-z, 0-9, _ and -, starting with a letter or digit", s)
	case s == Host:
		return "host is the root namespace: write its settings under the top-level host: key"
	}
	return ""
}

// checkIfName returns why name cannot be a Linux interface name, or "". It
// follows the kernel's dev_valid_name, and also rejects '%', which the
// kernel would expand as a name template.
func checkIfName(name, what string) string {
	switch {
	case name == "":
		return fmt.Sprintf("empty %s name", what)
	case len(name) > MaxIfName:
		return fmt.Sprintf("%s name %q is %d bytes; Linux allows at most %d", what, name, len(name), MaxIfName)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a usable %s name", name, what)
	case name[0] == '-':
		// The name reaches command lines (ovs-vsctl, ovs-ofctl, ethtool,
		// tcpdump), which would read it as an option.
		return fmt.Sprintf("%s name %q starts with -, which tools read as an option", what, name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c == '%' || c <= ' ' || c == 0x7f || c == '\u00a0' || c == '\u0085' {
			return fmt.Sprintf("%s name %q contains %q, which Linux interface names cannot", what, name, c)
		}
	}
	return ""
}

// checkSysctlKey accepts net.* names only: netlab sets per-namespace network
// settings, and other sysctls are not namespaced.
func checkSysctlKey(k string) string {
	if !strings.HasPrefix(k, "net.") {
		return fmt.Sprintf("sysctl %q: netlab only manages net.* sysctls", k)
	}
	for _, seg := range strings.Split(k, ".") {
		if seg == "" || !allIn(seg, "abcdefghijklmnopqrstuvwxyz0123456789_-") {
			return fmt.Sprintf("sysctl %q: want dotted segments of a-z, 0-9, _ and -, such as net.ipv4.ip_forward", k)
		}
	}
	return ""
}

func allIn(s, alphabet string) bool {
	for _, c := range s {
		if !strings.ContainsRune(alphabet, c) {
			return false
		}
	}
	return true
}

// parseOpenFlow reads `openflow: learning-switch` or the long form
// `openflow: {preset: learning-switch, idle-timeout: 300}`.
func (p *parser) parseOpenFlow(e entry, b *Bridge) {
	b.LearnIdleTimeout = DefaultLearnIdleTimeout
	if e.v.Kind == yaml.ScalarNode {
		if s, ok := p.oneOf(e, PresetLearningSwitch); ok {
			b.OpenFlow = s
		}
		return
	}
	f := p.fields(e.v, e.path, "openflow")
	if pe, ok := f["preset"]; ok {
		if s, ok := p.oneOf(pe, PresetLearningSwitch); ok {
			b.OpenFlow = s
		}
	} else {
		p.errorf(pos(e.v), e.path+".preset", "required: the preset, such as preset: learning-switch")
	}
	if te, ok := f["idle-timeout"]; ok {
		if n, ok := p.integer(te, 1, 65535); ok {
			b.LearnIdleTimeout = n
		}
	}
}

// checkFlowText catches what the file must not say in a flow; the flow's
// syntax itself is checked by Open vSwitch (ovs-ofctl) before up.
func checkFlowText(s string) string {
	t := strings.TrimSpace(s)
	if t == "" {
		return "empty flow"
	}
	if strings.ContainsAny(t, "\n\r") {
		return "a flow is one line"
	}
	low := strings.ToLower(t)
	for _, field := range strings.FieldsFunc(low, func(r rune) bool { return r == ',' || r == ' ' }) {
		if strings.HasPrefix(field, "cookie=") {
			return "flows must not set cookie=: netlab marks the lab's flows with its own cookie"
		}
	}
	if !strings.Contains(low, "actions=") {
		return "a flow needs actions= (such as actions=drop)"
	}
	return ""
}
