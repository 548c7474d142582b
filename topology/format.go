package topology

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Format writes a lab as the text of a lab file: Parse reads it back into
// an equal lab (positions and paths aside), and Format of that lab gives
// the same text again. It is how a lab built in Go gets validated, and a
// file, exactly like one written by hand: see Check.
//
// What Format writes:
//   - Everything in the file format, in the lab's order: Parse keeps the
//     order of the file, so plans, links and port numbers stay the same.
//   - Links on interfaces: an interface writes Interface.Peer (the other
//     end writes none when the first already names it). Lab.Links and
//     Bridge.Ports are derived by Parse, so Format reads Bridge.Ports only
//     for their OpenFlow numbers, written when they are not the ones Parse
//     would give anyway (1, 2, ... in the order of the ports).
//   - Lab.Impairments in the impair: block of the interface, bridge port or
//     TAP they name (an error when the lab has none of that name).
//   - Defaults are left out (type: ovs, fail-mode: standalone, a service's
//     30s timeout ...), and so are zero values, so the parser's defaults
//     apply: a Go zero value reads as the key not written. Zero values that
//     are values in Go are written: a File's Mode 0 is mode 0, a TAP's
//     Owner 0 is root (-1: none), an Expect's Reachable false expects no
//     reply.
//   - A file's text inline, also one read from beside its lab file (from:),
//     so the text stands alone; a from: file whose text was not read (or
//     is not UTF-8, which YAML cannot hold) stays from:.
//
// Format checks nothing Parse checks: it writes a lab's mistakes as they
// are, for Parse to report with the path of the field. It refuses only what
// has no place in a file: a lab with its prefix applied (ApplyPrefix; format
// the lab before), one machine's part of a lab (ForMachine), an
// environment entry without '=', a binary file text without from:.
func Format(lab *Lab) ([]byte, error) {
	switch {
	case lab == nil:
		return nil, errors.New("format: nil lab")
	case lab.Prefix != "":
		return nil, fmt.Errorf("format lab %s: it has prefix %q applied, and its names with it: format the lab before ApplyPrefix", lab.Name, lab.Prefix)
	case lab.Machine != "":
		return nil, fmt.Errorf("format lab %s: this is machine %s's part of the lab (ForMachine), not a lab file", lab.Name, lab.Machine)
	}
	f := &formatter{lab: lab, impairs: map[ifKey]*Impairment{}, described: map[End]End{}}
	for _, im := range lab.Impairments {
		k := ifKey{im.NS, im.Link}
		if f.impairs[k] != nil {
			return nil, fmt.Errorf("format lab %s: two impairments of %s/%s: an interface has one impair: block", lab.Name, im.NS, im.Link)
		}
		f.impairs[k] = im
	}
	root := f.top()
	for _, k := range sortedImpairKeys(f.impairs) {
		f.errs = append(f.errs, fmt.Errorf("impairment of %s/%s: the lab has no interface, bridge port or TAP of that name", k.ns, k.name))
	}
	if len(f.errs) > 0 {
		return nil, fmt.Errorf("format lab %s: %w", lab.Name, errors.Join(f.errs...))
	}
	compact(root)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("format lab %s: %w", lab.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("format lab %s: %w", lab.Name, err)
	}
	return buf.Bytes(), nil
}

// Check validates a lab built in Go as a file is validated: it is Parse of
// Format's text, and returns the lab Parse gives (derived fields filled in:
// Interface.NS and Peer, Links, Bridge.Ports and their OpenFlow numbers,
// defaults). Its errors name the lab as "lab NAME built in Go" and the
// field by its path in the file format, such as
// "lab t built in Go: namespaces.a.interfaces.p2p.addresses[0]: invalid CIDR \"10.0.0.1\"";
// they have no line, the text being Format's, not the caller's.
func Check(lab *Lab) (*Lab, error) {
	text, err := Format(lab)
	if err != nil {
		return nil, err
	}
	what := "lab " + lab.Name + " built in Go"
	parsed, err := Parse(what, text)
	var list ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			e.Pos = Pos{}
		}
		return nil, list
	}
	return parsed, err
}

// formatter holds one Format: the impairments not yet written, and the
// veth ends already written with their peer.
type formatter struct {
	lab       *Lab
	impairs   map[ifKey]*Impairment
	described map[End]End // an end written with peer: → that peer
	errs      []error
}

func (f *formatter) top() *yaml.Node {
	lab := f.lab
	m := newMap()
	if lab.Name != "" {
		m.add("name", yStr(lab.Name))
	}
	if len(lab.Machines) > 0 {
		ms := newMap()
		for _, mc := range lab.Machines {
			v := newMap()
			if mc.Address.IsValid() {
				v.add("address", yStr(mc.Address.String()))
			}
			if mc.Interface != "" {
				v.add("interface", yStr(mc.Interface))
			}
			ms.add(mc.Name, v.n)
		}
		m.add("machines", ms.n)
	}
	if h := lab.Host; h != nil {
		if v := f.namespace(h); len(v.Content) > 0 {
			m.add("host", v)
		}
	}
	if len(lab.Bridges) > 0 {
		bs := newMap()
		for _, b := range lab.Bridges {
			bs.add(b.Name, f.bridge(b))
		}
		m.add("bridges", bs.n)
	}
	if len(lab.Namespaces) > 0 {
		ns := newMap()
		for _, n := range lab.Namespaces {
			ns.add(n.Name, f.namespace(n))
		}
		m.add("namespaces", ns.n)
	}
	if len(lab.Expect) > 0 {
		xs := ySeq()
		for _, x := range lab.Expect {
			xs.Content = append(xs.Content, expect(x))
		}
		m.add("expect", xs)
	}
	if len(lab.Timelines) > 0 {
		m.add("timelines", f.timelines())
	}
	return m.n
}

// firstMachine is the machine a namespace or bridge is on when it names
// none: the lab's first.
func (f *formatter) firstMachine() string {
	if len(f.lab.Machines) == 0 {
		return ""
	}
	return f.lab.Machines[0].Name
}

func (f *formatter) bridge(b *Bridge) *yaml.Node {
	m := newMap()
	ovs := b.Type == BridgeOVS || b.Type == ""
	if !ovs {
		m.add("type", yStr(b.Type))
	}
	if b.FailMode != "" && !(ovs && b.FailMode == FailStandalone) {
		m.add("fail-mode", yStr(b.FailMode))
	}
	if b.Datapath != "" {
		m.add("datapath", yStr(b.Datapath))
	}
	if b.PortType != "" && !(ovs && b.PortType == PortTypeAuto) {
		m.add("port-type", yStr(b.PortType))
	}
	if len(b.Addresses) > 0 {
		m.add("addresses", yPrefixes(b.Addresses))
	}
	if b.MTU != 0 {
		m.add("mtu", yInt(b.MTU))
	}
	if ports := f.ports(b, ovs); len(ports.Content) > 0 {
		m.add("ports", ports)
	}
	switch {
	case b.OpenFlow != "" && (b.LearnIdleTimeout == 0 || b.LearnIdleTimeout == DefaultLearnIdleTimeout):
		m.add("openflow", yStr(b.OpenFlow))
	case b.OpenFlow != "" || b.LearnIdleTimeout != 0:
		of := newMap()
		if b.OpenFlow != "" {
			of.add("preset", yStr(b.OpenFlow))
		}
		of.add("idle-timeout", yInt(b.LearnIdleTimeout))
		m.add("openflow", of.n)
	}
	if len(b.Flows) > 0 {
		fl := ySeq()
		for _, x := range b.Flows {
			fl.Content = append(fl.Content, yStr(x.Text))
		}
		m.add("flows", fl)
	}
	if len(b.External) > 0 {
		xs := ySeq()
		for _, x := range b.External {
			xs.Content = append(xs.Content, yStr(x.Name))
		}
		m.add("external", xs)
	}
	switch {
	case len(b.Machines) == 1 && b.Machines[0] != f.firstMachine():
		m.add("machine", yStr(b.Machines[0]))
	case len(b.Machines) > 1:
		m.add("machines", yStrs(b.Machines))
	}
	if b.VNI != 0 {
		m.add("vni", yInt(b.VNI))
	}
	switch {
	case len(b.Controllers) == 1:
		m.add("controller", yStr(b.Controllers[0].Target))
	case len(b.Controllers) > 1:
		cs := ySeq()
		for _, c := range b.Controllers {
			cs.Content = append(cs.Content, yStr(c.Target))
		}
		m.add("controller", cs)
	}
	if b.VLANFiltering {
		m.add("vlan-filtering", yBool(true))
	}
	return m.n
}

// vlan writes a port's VLAN setting as Parse reads it back: the mode
// always (a tag alone would read as access, trunks alone as a trunk).
func vlan(v *VLAN) *yaml.Node {
	m := newMap()
	m.add("mode", yStr(v.Mode))
	if v.Tag != 0 {
		m.add("tag", yInt(v.Tag))
	}
	if len(v.Trunks) > 0 {
		ts := ySeq()
		for _, t := range v.Trunks {
			ts.Content = append(ts.Content, yInt(t))
		}
		ts.Style = yaml.FlowStyle
		m.add("trunks", ts)
	}
	m.n.Style = yaml.FlowStyle
	return m.n
}

// ports writes a bridge's ports: settings: OpenFlow numbers unless they are
// 1, 2, ... in the order Parse will find the ports (that of the interfaces
// naming them, as Format writes them), and the bridge sides' impairments.
func (f *formatter) ports(b *Bridge, ovs bool) *yaml.Node {
	var order []string
	seen := map[string]bool{}
	for _, n := range append([]*Namespace{f.lab.Host}, f.lab.Namespaces...) {
		if n == nil {
			continue
		}
		for _, i := range n.Interfaces {
			if i.Peer.Bridge == b.Name && !seen[i.Peer.Name] {
				order = append(order, i.Peer.Name)
				seen[i.Peer.Name] = true
			}
		}
	}
	ofport := map[string]int{}
	byName := map[string]*Port{}
	for _, p := range b.Ports {
		byName[p.Name] = p
		if !seen[p.Name] {
			order = append(order, p.Name)
			seen[p.Name] = true
		}
		ofport[p.Name] = p.OFPort
	}
	// Written when they are not Parse's own: 1, 2, ... in that order (or
	// none yet, as in a lab built in Go). A Linux bridge has none.
	sequential, none := true, true
	for i, name := range order {
		sequential = sequential && ofport[name] == i+1
		none = none && ofport[name] == 0
	}
	explicit := !none && (!ovs || !sequential)
	m := newMap()
	for _, name := range order {
		v := newMap()
		if explicit && ofport[name] != 0 {
			v.add("ofport", yInt(ofport[name]))
		}
		if im := f.impair(Host, name); im != nil {
			v.add("impair", im)
		}
		if p := byName[name]; p != nil && p.Internal {
			v.add("type", yStr(PortInternal))
		}
		if p := byName[name]; p != nil && p.VLAN != nil {
			v.add("vlan", vlan(p.VLAN))
		}
		if len(v.n.Content) > 0 {
			m.add(name, v.n)
		}
	}
	return m.n
}

// impair takes the impairment of interface ns/name, if any, and writes it.
func (f *formatter) impair(ns, name string) *yaml.Node {
	k := ifKey{ns, name}
	im := f.impairs[k]
	if im == nil {
		return nil
	}
	delete(f.impairs, k)
	if im.IsZero() {
		return nil
	}
	m := newMap()
	if im.Rate != 0 {
		m.add("rate", yStr(FormatRate(im.Rate)))
	}
	if im.Delay != 0 {
		m.add("delay", yStr(formatDuration(im.Delay)))
	}
	if im.Jitter != 0 {
		m.add("jitter", yStr(formatDuration(im.Jitter)))
	}
	for _, p := range []struct {
		key string
		v   float64
	}{{"loss", im.Loss}, {"duplicate", im.Duplicate}, {"corrupt", im.Corrupt}, {"reorder", im.Reorder}} {
		if p.v != 0 {
			m.add(p.key, yStr(FormatPercent(p.v)))
		}
	}
	if im.Limit != 0 {
		m.add("limit", yInt(im.Limit))
	}
	return m.n
}

// namespace writes a lab namespace, or the host (whose section takes fewer
// keys: Parse reports any other it finds there).
func (f *formatter) namespace(n *Namespace) *yaml.Node {
	m := newMap()
	if n.Machine != "" && n.Machine != f.firstMachine() {
		m.add("machine", yStr(n.Machine))
	}
	ifs := newMap()
	if len(n.Loopback) > 0 {
		lo := newMap()
		lo.add("addresses", yPrefixes(n.Loopback))
		ifs.add("lo", lo.n)
	}
	for _, i := range n.Interfaces {
		ifs.add(i.Name, f.iface(n.Name, i))
	}
	if len(ifs.n.Content) > 0 {
		m.add("interfaces", ifs.n)
	}
	if len(n.Routes) > 0 {
		rs := ySeq()
		for _, r := range n.Routes {
			rs.Content = append(rs.Content, route(r))
		}
		m.add("routes", rs)
	}
	if len(n.Sysctls) > 0 {
		ss := newMap()
		for _, s := range n.Sysctls {
			ss.add(s.Key, sysctlValue(s.Value))
		}
		m.add("sysctls", ss.n)
	}
	if len(n.NAT) > 0 {
		rs := ySeq()
		for _, r := range n.NAT {
			v := newMap()
			if r.Source.IsValid() {
				v.add("source", yStr(r.Source.String()))
			}
			if r.Out != "" {
				v.add("out", yStr(r.Out))
			}
			rs.Content = append(rs.Content, v.n)
		}
		m.add("nat", rs)
	}
	if len(n.TUNs) > 0 {
		ts := newMap()
		for _, t := range n.TUNs {
			ts.add(t.Name, tun(t))
		}
		m.add("tuns", ts.n)
	}
	if len(n.TAPs) > 0 {
		ts := newMap()
		for _, t := range n.TAPs {
			ts.add(t.Name, f.tap(n.Name, t))
		}
		m.add("taps", ts.n)
	}
	if len(n.Files) > 0 {
		fs := newMap()
		for _, x := range n.Files {
			v, err := file(x)
			if err != nil {
				f.errs = append(f.errs, fmt.Errorf("namespace %s: file %s: %w", n.Name, x.Path, err))
			}
			fs.add(x.Path, v)
		}
		m.add("files", fs.n)
	}
	if len(n.Dirs) > 0 {
		ds := ySeq()
		for _, d := range n.Dirs {
			ds.Content = append(ds.Content, yStr(d.Path))
		}
		m.add("dirs", ds)
	}
	if len(n.Services) > 0 {
		ss := newMap()
		for _, s := range n.Services {
			v, err := service(n.Name, s)
			if err != nil {
				f.errs = append(f.errs, fmt.Errorf("namespace %s: service %s: %w", n.Name, s.Name, err))
			}
			ss.add(s.Name, v)
		}
		m.add("services", ss.n)
	}
	return m.n
}

func (f *formatter) iface(ns string, i *Interface) *yaml.Node {
	m := newMap()
	self := End{NS: ns, Name: i.Name}
	peer := i.Peer
	// The other end names this one already: one peer: per link reads as
	// the file would be written.
	if peer != (End{}) && !(peer.Bridge == "" && f.described[End{NS: peer.NS, Name: peer.Name}] == self) {
		m.add("peer", yStr(peer.String()))
		f.described[self] = End{NS: peer.NS, Name: peer.Name}
	}
	if len(i.Addresses) > 0 {
		m.add("addresses", yPrefixes(i.Addresses))
	}
	if i.MAC != nil {
		m.add("mac", yStr(i.MAC.String()))
	}
	if i.MTU != 0 {
		m.add("mtu", yInt(i.MTU))
	}
	if i.VNI != 0 {
		m.add("vni", yInt(i.VNI))
	}
	if im := f.impair(ns, i.Name); im != nil {
		m.add("impair", im)
	}
	if len(i.VLANs) > 0 {
		vs := ySeq()
		for _, v := range i.VLANs {
			vm := newMap()
			vm.add("id", yInt(v.ID))
			if v.Name != fmt.Sprintf("%s.%d", i.Name, v.ID) {
				vm.add("name", yStr(v.Name))
			}
			if len(v.Addresses) > 0 {
				vm.add("addresses", yPrefixes(v.Addresses))
			}
			vm.n.Style = yaml.FlowStyle
			vs.Content = append(vs.Content, vm.n)
		}
		m.add("vlans", vs)
	}
	return m.n
}

func route(r Route) *yaml.Node {
	m := newMap()
	switch {
	case !r.To.IsValid():
		// Left out: Parse says to: is required.
	case r.To.Bits() == 0 && r.Via.IsValid() && r.To.Addr().IsUnspecified() && r.To.Addr().Is4() == r.Via.Is4():
		m.add("to", yStr("default"))
	default:
		m.add("to", yStr(r.To.String()))
	}
	if r.Via.IsValid() {
		m.add("via", yStr(r.Via.String()))
	}
	if r.Dev != "" {
		m.add("dev", yStr(r.Dev))
	}
	if r.Metric != 0 {
		m.add("metric", yInt(r.Metric))
	}
	return m.n
}

// sysctlValue writes a value as an integer when it reads back the same
// ("1"), else as a string (quoted by the encoder when YAML would read it
// as something else).
func sysctlValue(v string) *yaml.Node {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(i, 10) == v {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: v}
	}
	return yStr(v)
}

func tun(t *TUN) *yaml.Node {
	m := newMap()
	if t.Reflector {
		m.add("reflector", yBool(true))
	}
	if u := t.UDP; u != nil {
		v := newMap()
		if u.Listen.IsValid() {
			v.add("listen", yStr(u.Listen.String()))
		}
		if u.Send.IsValid() {
			v.add("send", yStr(u.Send.String()))
		}
		if u.Namespace != "" {
			v.add("namespace", yStr(u.Namespace))
		}
		m.add("udp", v.n)
	}
	if t.Queues != 0 {
		m.add("queues", yInt(t.Queues))
	}
	if len(t.CPUs) > 0 {
		cs := ySeq()
		for _, c := range t.CPUs {
			cs.Content = append(cs.Content, yInt(c))
		}
		m.add("cpus", cs)
	}
	if t.MTU != 0 {
		m.add("mtu", yInt(t.MTU))
	}
	if len(t.Addresses) > 0 {
		m.add("addresses", yPrefixes(t.Addresses))
	}
	if len(t.Routes) > 0 {
		m.add("routes", yPrefixes(t.Routes))
	}
	if t.Log {
		m.add("log", yBool(true))
	}
	return m.n
}

func (f *formatter) tap(ns string, t *TAP) *yaml.Node {
	m := newMap()
	if t.Owner != -1 {
		m.add("owner", yInt(t.Owner))
	}
	if t.Group != -1 {
		m.add("group", yInt(t.Group))
	}
	if t.MAC != nil {
		m.add("mac", yStr(t.MAC.String()))
	}
	if t.MultiQueue {
		m.add("multi-queue", yBool(true))
	}
	if t.VnetHdr {
		m.add("vnet-hdr", yBool(true))
	}
	if t.MTU != 0 {
		m.add("mtu", yInt(t.MTU))
	}
	if len(t.Addresses) > 0 {
		m.add("addresses", yPrefixes(t.Addresses))
	}
	if im := f.impair(ns, t.Name); im != nil {
		m.add("impair", im)
	}
	return m.n
}

// file writes a file's text: alone when its mode is the default, else
// with its mode (octal, as chmod takes it).
func file(x File) (*yaml.Node, error) {
	m := newMap()
	switch {
	case x.Content != nil && utf8.Valid(x.Content):
		if x.Mode == 0o644 {
			return text(string(x.Content)), nil
		}
		m.add("content", text(string(x.Content)))
	case x.From != "":
		m.add("from", yStr(x.From))
	case x.Content == nil:
		// A file of no text.
		if x.Mode == 0o644 {
			return yStr(""), nil
		}
		m.add("content", yStr(""))
	default:
		return m.n, errors.New("its text is not UTF-8, which a lab file cannot hold: give it From, a file beside the lab's")
	}
	mode := "0"
	if x.Mode != 0 {
		mode = "0" + strconv.FormatUint(uint64(x.Mode), 8)
	}
	m.add("mode", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: mode})
	return m.n, nil
}

// service writes a service: the command alone when the rest is default.
func service(ns string, s *Service) (*yaml.Node, error) {
	timeout := s.Timeout != 0 && s.Timeout != DefaultReadyTimeout
	restart := s.Restart != "" && s.Restart != RestartOnFailure
	if len(s.Env) == 0 && s.Dir == "" && s.User == "" && len(s.After) == 0 && s.Ready == nil && !timeout && !restart {
		return yStrs(s.Command), nil
	}
	var err error
	m := newMap()
	m.add("command", yStrs(s.Command))
	if len(s.Env) > 0 {
		env := newMap()
		for _, kv := range s.Env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				err = fmt.Errorf("env %q: want KEY=VALUE", kv)
			}
			env.add(k, yStr(v))
		}
		m.add("env", env.n)
	}
	if s.Dir != "" {
		m.add("dir", yStr(s.Dir))
	}
	if s.User != "" {
		if uid, err := strconv.Atoi(s.User); err == nil && strconv.Itoa(uid) == s.User {
			m.add("user", yInt(uid))
		} else {
			m.add("user", yStr(s.User))
		}
	}
	if len(s.After) > 0 {
		after := ySeq()
		for _, r := range s.After {
			after.Content = append(after.Content, yStr(strings.TrimPrefix(r.Name, ns+"/")))
		}
		m.add("after", after)
	}
	if r := s.Ready; r != nil {
		v := newMap()
		if r.TCP != 0 {
			v.add("tcp", yInt(r.TCP))
		}
		if r.UDP != 0 {
			v.add("udp", yInt(r.UDP))
		}
		if len(r.Command) > 0 {
			v.add("command", yStrs(r.Command))
		}
		if r.Log != "" {
			v.add("log", yStr(r.Log))
		}
		m.add("ready", v.n)
	}
	if timeout {
		m.add("timeout", yStr(formatDuration(s.Timeout)))
	}
	if restart {
		m.add("restart", yStr(s.Restart))
	}
	return m.n, err
}

// formatDuration writes 90s as "1m30s" and 1m as "1m", not "1m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func expect(x Expect) *yaml.Node {
	m := newMap()
	if x.From != "" {
		m.add("from", yStr(x.From))
	}
	if x.To != "" {
		m.add("to", yStr(x.To))
	}
	if x.Ping {
		m.add("ping", yBool(true))
	}
	if x.TCP != 0 {
		m.add("tcp", yInt(x.TCP))
	}
	if x.UDP != 0 {
		m.add("udp", yInt(x.UDP))
	}
	if !x.Reachable {
		m.add("reachable", yBool(false))
	}
	return m.n
}

func sortedImpairKeys(m map[ifKey]*Impairment) []ifKey {
	keys := make([]string, 0, len(m))
	byName := map[string]ifKey{}
	for k := range m {
		s := k.ns + "/" + k.name
		keys = append(keys, s)
		byName[s] = k
	}
	out := make([]ifKey, 0, len(keys))
	for _, s := range sortedKeys(byName) {
		out = append(out, byName[s])
	}
	return out
}

// YAML nodes. Strings are tagged !!str: the encoder quotes one that YAML
// would read as a number or a boolean ("0", "true"), as the parser wants.

// ymap is a mapping node under construction, in insertion order.
type ymap struct{ n *yaml.Node }

func newMap() ymap { return ymap{&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}} }

func (m ymap) add(key string, v *yaml.Node) { m.n.Content = append(m.n.Content, yStr(key), v) }

func yStr(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch {
	case oldBool(s):
		// A string to YAML 1.2 and to this parser, a boolean to YAML 1.1
		// tools (restart: "no").
		n.Style = yaml.DoubleQuotedStyle
	case strings.HasPrefix(s, "\n"):
		// yaml.v3 writes a string of lines as a block, which reads back
		// without a first empty line.
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// oldBool says whether YAML 1.1 reads s as a boolean.
func oldBool(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
		return true
	}
	return false
}

func yInt(i int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(i)}
}

func yBool(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

func ySeq() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

// text is a string in literal block style when it has several lines (the
// encoder falls back to a quoted string when a block cannot hold it).
func text(s string) *yaml.Node {
	n := yStr(s)
	if n.Style == 0 && strings.Contains(s, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

func yStrs(ss []string) *yaml.Node {
	n := ySeq()
	for _, s := range ss {
		n.Content = append(n.Content, yStr(s))
	}
	return n
}

func yPrefixes(ps []netip.Prefix) *yaml.Node {
	n := ySeq()
	for _, p := range ps {
		n.Content = append(n.Content, yStr(p.String()))
	}
	return n
}

// flowWidth is how wide a mapping or list may be to go on one line,
// leaving room for its key and indentation.
const flowWidth = 64

// compact puts short mappings and lists on one line, {peer: b/p2p,
// addresses: [10.0.0.1/24]}, as lab files are written: a list of scalars,
// or a mapping of scalars and such lists holding at most one level of
// mapping (an interface's impair:), when it fits in flowWidth.
func compact(n *yaml.Node) {
	for _, c := range n.Content {
		compact(c)
	}
	if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
		return
	}
	if w, depth := flowSize(n); w >= 0 && w <= flowWidth && (n.Kind == yaml.SequenceNode && depth == 0 || n.Kind == yaml.MappingNode && depth <= 1) {
		n.Style = yaml.FlowStyle
	}
}

// flowSize is the width of n on one line (-1: it cannot go on one), and how
// many levels of mappings it holds.
func flowSize(n *yaml.Node) (width, depth int) {
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.ContainsAny(n.Value, "\n\r") || n.Style == yaml.LiteralStyle {
			return -1, 0
		}
		if n.Style != 0 || n.Value == "" || n.Tag == "!!str" && looksScalar(n.Value) {
			return len(n.Value) + 2, 0 // quoted
		}
		return len(n.Value), 0
	case yaml.MappingNode, yaml.SequenceNode:
		// Brackets, then ", " between items and ": " after keys.
		width = 2 + 2*max(len(n.Content)-1, 0)
		for _, c := range n.Content {
			w, d := flowSize(c)
			if w < 0 {
				return -1, 0
			}
			width += w
			if c.Kind == yaml.MappingNode {
				d++
			}
			depth = max(depth, d)
		}
		return width, depth
	}
	return -1, 0
}
