package plan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

func (p *planner) addresses() {
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			o := p.exists(nsName, name)
			if p.held(nsName, name) != "" {
				// Held down by a pulled cable: the kernel flushed its IPv6
				// addresses; they come back with the link.
				continue
			}
			for _, a := range w.addrs {
				if o == nil || !slices.Contains(o.Addrs, a) {
					p.emit(AddAddr{NS: nsName, Link: name, Addr: a})
				}
			}
		}
	}
}

func (p *planner) routes() {
	for _, nsName := range p.nsOrder() {
		ns := p.lab.Namespace(nsName)
		o := p.snap.Namespaces[nsName]
		for _, r := range ns.EffectiveRoutes() {
			want := toState(r)
			if p.throughHeld(nsName, want) {
				continue
			}
			found := false
			if o != nil && !p.dirty[nsName] {
				for _, or := range o.Routes {
					if sameRoute(want, or) && p.linkSurvives(nsName, or.Dev) && p.ownRoute(nsName, or) {
						found = true
					}
				}
			}
			if !found {
				p.emit(ReplaceRoute{NS: nsName, Route: &want})
			}
		}
	}
}

func toState(r topology.Route) state.Route {
	return state.Route{To: r.To, Via: r.Via, Dev: r.Dev, Metric: r.Metric}
}

// metric is the metric the kernel reports: IPv6 routes added with metric 0
// get 1024 (IP6_RT_PRIO_USER).
func metric(r state.Route) int {
	if r.Metric == 0 && r.To.Addr().Is6() {
		return 1024
	}
	return r.Metric
}

// SameRoute says whether an observed route is the wanted (or journaled)
// one, as the kernel reports it.
func SameRoute(want, got state.Route) bool { return sameRoute(want, got) }

// sameRoute compares a wanted route with an observed one. The observed route
// always names its device; the wanted one may leave it to the kernel.
func sameRoute(want, got state.Route) bool {
	return want.To == got.To && want.Via == got.Via && metric(want) == metric(got) &&
		(want.Dev == "" || want.Dev == got.Dev)
}

// loopback gives each lab namespace's lo the addresses the file gives it
// (router ids, anycast /32s), and takes away others a hand added; the
// kernel's own (127.0.0.1/8, ::1, link-local) stay.
func (p *planner) loopback() {
	for _, ns := range p.lab.Namespaces {
		var have []netip.Prefix
		if o := p.snap.Namespaces[ns.Name]; o != nil && o.Owner == p.lab.Name && o.Links["lo"] != nil {
			have = o.Links["lo"].Addrs
		}
		for _, a := range have {
			if !slices.Contains(ns.Loopback, a) && !a.Addr().IsLoopback() && !a.Addr().IsLinkLocalUnicast() {
				p.emitRemoval(ns.Name, DelAddr{NS: ns.Name, Link: "lo", Addr: a})
			}
		}
		for _, a := range ns.Loopback {
			if !slices.Contains(have, a) {
				p.emit(AddAddr{NS: ns.Name, Link: "lo", Addr: a})
			}
		}
	}
}

// ownRoute says whether an observed netlab route (protocol 78) in ns is this
// lab's. In the lab's own namespaces every netlab route is. The host is
// shared with the machine and other labs: a host route is the lab's when its
// journal names it, or when it goes through one of the lab's host links (a
// journal from before host routes were journaled).
func (p *planner) ownRoute(ns string, r state.Route) bool {
	if ns != topology.Host {
		return true
	}
	if p.j != nil && slices.ContainsFunc(p.j.HostRoutes, func(jr state.Route) bool { return sameRoute(jr, r) }) {
		return true
	}
	return ownHostLink(p.lab.Name, p.snap, r.Dev)
}

// routeClashes are the lab's host routes whose destination already has a
// route that is not the lab's: the machine's own (a default route from
// DHCP, a static route), or another lab's. Installing the lab's would
// replace it (`ip route replace` keys on the destination) or, at another
// metric, take its traffic; and down would then leave the machine without
// it. netlab leaves such a route alone and refuses the lab's.
func (p *planner) routeClashes(clash func(topology.Pos, string, string, ...any)) {
	host := p.snap.Namespaces[topology.Host]
	if host == nil {
		return
	}
	for i, w := range p.lab.Host.EffectiveRoutes() {
		path := fmt.Sprintf("host.routes[%d]", i)
		if i >= len(p.lab.Host.Routes) {
			path = "host.tun"
		}
		for _, f := range host.Foreign {
			if f.To == w.To && !ownHostLink(p.lab.Name, p.snap, f.Dev) {
				clash(w.Pos, path, "the host already has a route to %s that is not netlab's (%s): the lab's would replace it or take its traffic, and down would leave the machine without it; netlab leaves it alone", w.Dest(), f)
			}
		}
		for _, o := range host.Routes {
			if o.To == w.To && !p.ownRoute(topology.Host, o) {
				clash(w.Pos, path, "the host already has a route to %s that netlab installed for another lab (%s); netlab leaves it alone", w.Dest(), state.ForeignRoute{Route: o, Protocol: "78"})
			}
		}
	}
}
