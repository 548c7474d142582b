package topology

import (
	"fmt"
)

// simpleName says whether s is 1 to max characters (any number for max
// 0) of a-z, 0-9 and -, the first not -: `^[a-z0-9][a-z0-9-]{0,max-1}$`.
// Written out rather than a regular expression compiled when the program
// starts: every netlab command paid for compiling four of them.
func simpleName(s string, max int) bool {
	if s == "" || s[0] == '-' || max > 0 && len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidPartitionName says whether s may name a partition: 1 to 32 of a-z,
// 0-9 and -, starting with a letter or digit.
func ValidPartitionName(s string) bool { return simpleName(s, 32) }

// MaxPrefixedLabName bounds a lab name after a prefix: the name limit plus the
// longest prefix.
const MaxPrefixedLabName = MaxLabName + 6

// ApplyPrefix renames everything of the lab that is global on the machine:
// the lab name, namespace names, bridge names, and interface names in the
// host namespace (bridge ports, host veth ends). Interface names inside lab
// namespaces stay as they are: namespaces keep them apart. With distinct
// prefixes, two copies of one file can be up at once (parallel tests, two
// projects on one machine). Names that grow past the kernel's 15 bytes are
// errors with the place they were written.
//
// Equivalent to: `netlab up --prefix P FILE`.
func ApplyPrefix(l *Lab, p string) error {
	hostNames := map[string]bool{}
	for _, lk := range l.Links {
		for _, e := range []LinkEnd{lk.A, lk.B} {
			if e.NS == Host {
				hostNames[e.Name] = true
			}
		}
	}
	for _, b := range l.Bridges {
		hostNames[b.Name] = true
	}
	if p == "" {
		return nil
	}
	if !simpleName(p, 6) {
		return &Error{File: l.File, Msg: fmt.Sprintf("prefix %q: want 1 to 6 characters of [a-z0-9-], starting with a letter or digit", p)}
	}
	var errs ErrorList
	check := func(name string, pos Pos, path string) {
		if len(name) > MaxIfName {
			errs = append(errs, &Error{File: l.File, Pos: pos, Path: path,
				Msg: fmt.Sprintf("name %q is longer than %d bytes with prefix %q", name, MaxIfName, p)})
		}
	}
	host := func(ns, name string) string {
		if ns == Host {
			return p + name
		}
		return name
	}
	ns := func(name string) string {
		if name == Host || name == "" {
			return name
		}
		return p + name
	}
	br := func(name string) string {
		if name == "" {
			return ""
		}
		return p + name
	}
	end := func(e End) End {
		return End{NS: ns(e.NS), Name: host(e.NS, e.Name), Bridge: br(e.Bridge)}
	}

	l.nsIndex = nil // renamed below, indexed again after
	l.Name = p + l.Name
	l.Prefix = p
	for _, b := range l.Bridges {
		b.Name = p + b.Name
		check(b.Name, b.Pos, "bridges."+b.Name)
		for _, port := range b.Ports {
			port.Name = p + port.Name
			if !port.Internal { // an internal port has no peer
				port.Peer = end(port.Peer)
			}
			check(port.Name, port.Pos, "bridges."+b.Name+".ports."+port.Name)
		}
	}
	for _, n := range append([]*Namespace{l.Host}, l.Namespaces...) {
		isHost := n.IsHost()
		n.Name = ns(n.Name)
		for _, t := range n.TUNs {
			t.NS = n.Name
			if t.UDP != nil {
				t.UDP.Namespace = ns(t.UDP.Namespace)
			}
		}
		for _, t := range n.TAPs {
			t.NS = n.Name
		}
		for _, sv := range n.Services {
			sv.NS = n.Name
			for i := range sv.After {
				sv.After[i].Name = p + sv.After[i].Name // NS/NAME, its namespace prefixed
			}
		}
		for _, i := range n.Interfaces {
			if isHost {
				i.Name = p + i.Name
				check(i.Name, i.Pos, "host.interfaces."+i.Name)
			}
			i.NS = n.Name
			i.Peer = end(i.Peer)
		}
		for k := range n.NAT {
			// A host rule may name the host's own uplink, which keeps its
			// name; only the lab's host interfaces are renamed.
			if isHost && hostNames[n.NAT[k].Out] {
				n.NAT[k].Out = p + n.NAT[k].Out
			}
		}
		for k := range n.Routes {
			if isHost && n.Routes[k].Dev != "" {
				n.Routes[k].Dev = p + n.Routes[k].Dev
			}
		}
	}
	l.indexNamespaces() // renamed
	for _, im := range l.Impairments {
		im.NS, im.Link = ns(im.NS), host(im.NS, im.Link)
	}
	for _, lk := range l.Links {
		for _, e := range []*LinkEnd{&lk.A, &lk.B} {
			wasHost := e.NS == Host
			e.End = end(e.End)
			if wasHost {
				check(e.Name, e.Pos, "peer "+e.End.String())
			}
		}
	}
	for i := range l.Expect {
		x := &l.Expect[i]
		x.From = ns(x.From)
		if !x.Addr.IsValid() || x.To != x.Addr.String() {
			if l.Namespace(p+x.To) != nil || l.Bridge(p+x.To) != nil {
				x.To = p + x.To
			}
		}
	}
	if len(errs) > 0 {
		return errs.sortAndDedup()
	}
	return nil
}
