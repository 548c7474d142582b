package topology

import (
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"
)

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
