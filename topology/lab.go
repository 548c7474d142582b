package topology

// Namespace returns the namespace called name, Host included, or nil. Peers
// and plan actions name namespaces by string; this is their lookup.
func (l *Lab) Namespace(name string) *Namespace {
	if name == Host {
		return l.Host
	}
	if ix := l.nsIndex; ix != nil && ix.n == len(l.Namespaces) && (ix.n == 0 || ix.first == &l.Namespaces[0]) {
		return ix.byName[name]
	}
	for _, n := range l.Namespaces {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Bridge returns the bridge called name, or nil.
func (l *Lab) Bridge(name string) *Bridge {
	for _, b := range l.Bridges {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// AllNamespaces returns the namespaces netlab configures: Host first when the
// file gives it interfaces, routes or sysctls (the host is set up before the
// lab namespaces that route through it), then the lab namespaces in file
// order.
func (l *Lab) AllNamespaces() []*Namespace {
	out := make([]*Namespace, 0, len(l.Namespaces)+1)
	if h := l.Host; h != nil && len(h.Interfaces)+len(h.Routes)+len(h.Sysctls) > 0 {
		out = append(out, h)
	}
	return append(out, l.Namespaces...)
}

// DefaultSysctls returns the settings netlab writes into every lab namespace
// before the file's own. A new namespace copies some IPv4 settings from the
// host (ip_forward, rp_filter defaults), so a lab would behave differently on
// different machines unless netlab pins what it depends on: no forwarding
// unless asked, no reverse-path filtering (asymmetric lab routes are normal),
// and no duplicate address detection (addresses usable at once, no
// "tentative" IPv6 addresses in tests).
//
// Equivalent to: `ip netns exec $ns sysctl -w net.ipv4.ip_forward=0 ...`
func DefaultSysctls() []Sysctl {
	return []Sysctl{
		{Key: "net.ipv4.ip_forward", Value: "0"},
		{Key: "net.ipv6.conf.all.forwarding", Value: "0"},
		{Key: "net.ipv4.conf.all.rp_filter", Value: "0"},
		{Key: "net.ipv4.conf.default.rp_filter", Value: "0"},
		{Key: "net.ipv6.conf.all.accept_dad", Value: "0"},
		{Key: "net.ipv6.conf.default.accept_dad", Value: "0"},
	}
}

// EffectiveRoutes returns the routes netlab installs in n: the file's, and
// the prefixes routed to its TUN devices.
func (n *Namespace) EffectiveRoutes() []Route {
	out := append([]Route(nil), n.Routes...)
	for _, t := range n.TUNs {
		for _, r := range t.Routes {
			out = append(out, Route{To: r, Dev: t.Name, Pos: t.Pos})
		}
	}
	return out
}

// EffectiveSysctls returns the sysctls netlab writes into n: for a lab
// namespace, DefaultSysctls with the file's values replacing defaults in
// place, followed by the file's other sysctls in file order; for the host,
// only the file's sysctls, because netlab changes host settings only when
// the file says so (and restores them on down).
func (n *Namespace) EffectiveSysctls() []Sysctl {
	if n.IsHost() {
		return append([]Sysctl(nil), n.Sysctls...)
	}
	out := DefaultSysctls()
	for _, s := range n.Sysctls {
		replaced := false
		for i := range out {
			if out[i].Key == s.Key {
				out[i] = s
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, s)
		}
	}
	return out
}

// nsIndex is the lab's namespaces by name, so that Namespace does not walk
// the list: the planner and the validator look namespaces up for each of
// the others, which made a lab of 10,000 namespaces cost 3.6 times more
// per namespace to plan than one of 1,000. It is built by Parse, and
// again by ApplyPrefix (which renames) and ForMachine (a new list); it
// serves only the list it was built from (the same array, the same
// length), so a Lab built or grown by other code is walked as before.
type nsIndex struct {
	byName map[string]*Namespace
	first  **Namespace
	n      int
}

// indexNamespaces (re)builds the index of the namespaces as they are now.
func (l *Lab) indexNamespaces() {
	ix := &nsIndex{byName: make(map[string]*Namespace, len(l.Namespaces)), n: len(l.Namespaces)}
	for _, n := range l.Namespaces {
		if _, dup := ix.byName[n.Name]; !dup { // the first, as the walk finds
			ix.byName[n.Name] = n
		}
	}
	if ix.n > 0 {
		ix.first = &l.Namespaces[0]
	}
	l.nsIndex = ix
}
