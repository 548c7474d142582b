package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// Only a regular file is read: opening a FIFO would wait for a writer
	// for ever, and a device could be read for ever.
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): a topology is read from a file", path, fileKind(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	lab, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := ReadSideFiles(lab, filepath.Dir(path)); err != nil {
		return nil, err
	}
	return lab, nil
}

// ReadTraces reads the trace files the lab's impairments name (relative to
// dir, the lab file's directory) into lab.Traces: Parse leaves them unread.
// Load calls it through ReadSideFiles.
func ReadTraces(lab *Lab, dir string) error {
	if errs := readTraces(lab, dir); len(errs) > 0 {
		return errs.sortAndDedup()
	}
	return nil
}

// ReadSideFiles reads the files a lab's namespaces place from beside the lab
// file (files: {PATH: {from: FILE}}) and the traces its impairments replay
// (impair: {trace: FILE}), relative to dir. Parse leaves them unread, so it
// never reads the machine; Load calls this with the lab file's directory.
// Every file that cannot be read is an error at its line.
func ReadSideFiles(lab *Lab, dir string) error {
	var errs ErrorList
	for _, ns := range lab.Namespaces {
		for i := range ns.Files {
			f := &ns.Files[i]
			if f.From == "" || f.Content != nil {
				continue
			}
			full := filepath.Join(dir, f.From)
			fi, err := os.Stat(full)
			switch {
			case err != nil:
				errs = append(errs, &Error{File: lab.File, Pos: f.FromPos, Path: f.Key + ".from", Msg: fmt.Sprintf("cannot read %s: %v", full, errors.Unwrap(err))})
				continue
			case !fi.Mode().IsRegular():
				errs = append(errs, &Error{File: lab.File, Pos: f.FromPos, Path: f.Key + ".from", Msg: fmt.Sprintf("%s is not a regular file (%s)", full, fileKind(fi.Mode()))})
				continue
			case fi.Size() > MaxFileSize:
				errs = append(errs, &Error{File: lab.File, Pos: f.FromPos, Path: f.Key + ".from", Msg: fmt.Sprintf("%s is larger than %d bytes", full, MaxFileSize)})
				continue
			}
			b, err := os.ReadFile(full)
			if err != nil {
				errs = append(errs, &Error{File: lab.File, Pos: f.FromPos, Path: f.Key + ".from", Msg: fmt.Sprintf("cannot read %s: %v", full, err)})
				continue
			}
			f.Content = b
		}
	}
	errs = append(errs, readTraces(lab, dir)...)
	if len(errs) > 0 {
		return errs.sortAndDedup()
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// Parse parses, validates and defaults a topology. file names the source in
// errors and in Lab.File. On any problem it returns an ErrorList holding every
// error found, sorted by position; it never panics, whatever the input.
//
// The YAML is walked as a node tree rather than decoded into structs:
// yaml.v3 loses its strictness inside custom unmarshalers, and only the tree
// carries the line and column of every value.
func Parse(file string, data []byte) (*Lab, error) {
	p := &parser{file: file, sections: sections()}
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
	// sections is sections(), made once: fields looks it up for every
	// mapping of the file (made each time, it was a quarter of parsing).
	sections map[string]section

	lab     *Lab
	host    *nsInfo
	nss     []*nsInfo // lab namespaces, in file order
	bridges []*bridgeInfo
	byKey   map[ifKey]*ifaceInfo // every described interface, by namespace and name
	impairs []*Impairment        // impair: blocks, in file order
	// eventImpairs are the timelines' impair events as written.
	eventImpairs []pendingImpair
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
	b         *Bridge
	path      string
	addrPos   []Pos
	ovsOnly   []entry // fail-mode, datapath: errors on a Linux bridge
	settings  []*portSetting
	portType  *entry // nil when not written
	addrBad   bool
	machines  []machineRef // machine: or machines: as written
	vni       *entry
	linuxOnly []entry // vlan-filtering: an error on an OVS bridge
}

// portSetting is one entry of a bridge's ports: map.
type portSetting struct {
	name      string
	path      string
	pos       Pos
	ofport    int
	ofportKey *entry // nil when not written
	internal  bool   // type: internal
	typeKey   *entry // nil when not written
	vlan      *VLAN  // parsed vlan:, nil when not written or bad
	vlanKey   *entry
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
		"lab":             {known: []string{"name", "machines", "host", "bridges", "namespaces", "expect", "timelines"}},
		"machine":         {known: []string{"address", "interface"}},
		"expect":          {known: []string{"from", "to", "ping", "tcp", "udp", "reachable"}},
		"host":            {known: []string{"sysctls", "routes", "interfaces", "nat"}},
		"nat":             {known: []string{"source", "out"}},
		"bridge":          {known: []string{"type", "fail-mode", "datapath", "port-type", "addresses", "mtu", "ports", "openflow", "flows", "external", "machine", "machines", "vni", "controller", "vlan-filtering"}},
		"openflow":        {known: []string{"preset", "idle-timeout"}},
		"port":            {known: []string{"ofport", "impair", "type", "vlan"}},
		"vlan":            {known: []string{"mode", "tag", "trunks"}},
		"impair":          {known: []string{"rate", "delay", "jitter", "distribution", "loss", "gilbert-elliott", "duplicate", "corrupt", "reorder", "limit", "trace", "emulator"}},
		"gilbert-elliott": {known: []string{"p", "r", "loss-bad", "loss-good"}},
		"namespace":       {known: []string{"machine", "interfaces", "routes", "sysctls", "nat", "tuns", "taps", "files", "dirs", "services"}},
		"file":            {known: []string{"content", "from", "mode"}},
		"service":         {known: []string{"command", "env", "dir", "user", "after", "ready", "timeout", "restart"}},
		"ready":           {known: []string{"tcp", "udp", "command", "log"}},
		"loopback":        {known: []string{"addresses"}},
		"tun":             {known: []string{"reflector", "udp", "queues", "cpus", "mtu", "addresses", "routes", "log"}},
		"udp":             {known: []string{"listen", "send", "namespace"}},
		"tap":             {known: []string{"owner", "group", "mac", "multi-queue", "vnet-hdr", "mtu", "addresses", "impair"}},
		"interface":       {known: []string{"peer", "addresses", "mac", "mtu", "vni", "impair", "vlans"}},
		"vlan-interface":  {known: []string{"id", "name", "addresses"}},
		"route":           {known: []string{"to", "via", "dev", "metric"}},
		"timeline":        {known: []string{"start", "events"}},
		"event":           {known: []string{"at", "every", "count", "for", "link-down", "link-up", "partition", "heal", "impair"}},
		// An impair event's interfaces each have an "impair" section.
		"event-partition": {known: []string{"a", "b", "one-way", "name"}},
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
	if quoted(n) && (n.ShortTag() != "!!str" || looksScalar(n.Value)) {
		return fmt.Sprintf("the quoted string %q (write numbers and booleans without quotes)", n.Value)
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
	if root == nil {
		return nil
	}
	if root = p.expandAliases(root); root == nil || !p.checkTree(root) {
		return nil
	}
	p.parseLab(root)
	if p.lab == nil {
		return nil
	}
	p.lab.indexNamespaces()
	p.derive()
	p.lab.indexNamespaces()
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

// checkTree rejects nesting deeper than the format ever needs. It walks
// without recursion, so a deep tree cannot exhaust the stack.
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

// maxExpanded bounds the values that a file's aliases add when expanded:
// repeated services and interfaces stay far below it, an alias bomb
// ("billion laughs": nine aliases of nine aliases of ...) is stopped long
// before it costs memory. What the file writes out is bounded by its size
// (MaxFileSize), not by this: a lab of 10,000 namespaces with their
// routes is some 250,000 values.
const maxExpanded = 200_000

// expandAliases returns the tree with every alias (*name) replaced by a copy
// of its anchor's value (&name) and every merge key (<<: *name, or a list of
// them) replaced by the merged mapping's keys that the mapping does not
// write itself (the first merged mapping wins, as YAML says), in place of the
// merge key: repeated services or interfaces are written once. Copies keep
// the anchor's positions, so an error in a shared value points at where it
// is written. nil, with an error, for a tree that expands beyond
// maxExpanded, nests beyond maxDepth, or merges what is not a mapping.
func (p *parser) expandAliases(root *yaml.Node) *yaml.Node {
	if !hasAliases(root) {
		return root // nothing to expand: no copy (most files, and the largest)
	}
	x := expander{p: p, active: map[*yaml.Node]bool{}}
	out := x.copy(root, 1)
	if x.failed {
		return nil
	}
	return out
}

// hasAliases says whether the tree holds an alias or a merge key, without
// recursion (checkTree bounds the depth after).
func hasAliases(root *yaml.Node) bool {
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.AliasNode || isMergeKey(n) {
			return true
		}
		stack = append(stack, n.Content...)
	}
	return false
}

type expander struct {
	p      *parser
	count  int                 // values copied from an alias's anchor
	active map[*yaml.Node]bool // anchors being copied: one that contains itself
	outer  *yaml.Node          // the alias written outside any anchor being copied, whose copy goes on
	failed bool
}

func (x *expander) fail(n *yaml.Node, format string, args ...any) *yaml.Node {
	if !x.failed {
		x.p.errorf(pos(n), "", format, args...)
		x.failed = true
	}
	return nil
}

func (x *expander) copy(n *yaml.Node, depth int) *yaml.Node {
	switch {
	case x.failed:
		return nil
	case depth > maxDepth:
		return x.fail(n, "YAML nested deeper than %d levels", maxDepth)
	}
	if len(x.active) > 0 {
		x.count++
	}
	if x.count > maxExpanded {
		return x.fail(x.outer, "YAML aliases expand to more than %d values (an alias bomb?): write the values out", maxExpanded)
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || x.active[n.Alias] {
			return x.fail(n, "YAML alias *%s refers to a value that contains it", n.Value)
		}
		if len(x.active) == 0 {
			x.outer = n
		}
		x.active[n.Alias] = true
		c := x.copy(n.Alias, depth)
		delete(x.active, n.Alias)
		return c
	}
	c := *n
	c.Anchor, c.Content = "", nil
	if n.Kind != yaml.MappingNode {
		for _, child := range n.Content {
			c.Content = append(c.Content, x.copy(child, depth+1))
		}
		return &c
	}
	// A mapping: its own keys win over merged ones, wherever they stand.
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			own[n.Content[i].Value] = true
		}
	}
	merged := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			c.Content = append(c.Content, x.copy(k, depth+1), x.copy(v, depth+1))
			continue
		}
		from := []*yaml.Node{x.copy(v, depth+1)}
		if from[0] != nil && from[0].Kind == yaml.SequenceNode {
			from = from[0].Content
		}
		for _, m := range from {
			if x.failed {
				return nil
			}
			if m.Kind != yaml.MappingNode {
				return x.fail(v, "<<: merges a mapping (or a list of mappings) into this one, got %s", describe(m))
			}
			for j := 0; j+1 < len(m.Content); j += 2 {
				key := m.Content[j].Value
				if own[key] || merged[key] {
					continue
				}
				merged[key] = true
				c.Content = append(c.Content, m.Content[j], m.Content[j+1])
			}
		}
	}
	return &c
}

// isMergeKey says whether a mapping key is YAML's merge key, <<.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
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
	sec := p.sections[name]
	out := map[string]entry{}
	for _, e := range p.entries(n, path) {
		switch {
		case contains(sec.known, e.key):
			out[e.key] = e
		case contains(sec.reserved, e.key):
			p.errorf(pos(e.k), e.path, "reserved for a later netlab version, not supported yet")
		case name == "lab" && strings.HasPrefix(e.key, "x-"):
			// x-NAME at the top level is the user's, as in Compose files: a
			// place for anchors (&router) the lab then merges (<<: *router).
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
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!int" || quoted(e.v) {
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

// quoted says whether a scalar was written in quotes: "1500" is a string,
// even tagged !!int, as the format's documentation says.
func quoted(n *yaml.Node) bool {
	return n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0
}

// looksScalar says whether a string reads as a number or a boolean.
func looksScalar(s string) bool {
	_, ierr := strconv.ParseFloat(s, 64)
	_, berr := strconv.ParseBool(s)
	return ierr == nil || berr == nil
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

// listItem is one string of a list, with its place in the file.
type listItem struct {
	value string
	pos   Pos
	path  string
}

// stringList returns the strings of a list; an item that is not a string is
// an error ("want WHAT, got ...") and left out.
func (p *parser) stringList(e entry, what string) []listItem {
	var out []listItem
	for i, item := range p.list(e) {
		path := index(e.path, i)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			p.errorf(pos(item), path, "want %s, got %s", what, describe(item))
			continue
		}
		out = append(out, listItem{value: item.Value, pos: pos(item), path: path})
	}
	return out
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
	if e, ok := f["timelines"]; ok {
		p.parseTimelines(e)
	}
}

// boolean returns a true/false value.
func (p *parser) boolean(e entry) (bool, bool) {
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!bool" || quoted(e.v) {
		p.errorf(pos(e.v), e.path, "want true or false, got %s", describe(e.v))
		return false, false
	}
	return e.v.Value == "true", true
}
