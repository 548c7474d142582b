package plan

import (
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

func (p *planner) addresses() {
	for _, nsName := range p.nsOrder() {
		for _, name := range p.linkOrder(nsName) {
			w := p.want[nsName][name]
			o := p.exists(nsName, name)
			for _, a := range w.addrs {
				if o == nil || !slices.Contains(o.Addrs, a) {
					p.emit(Action{Op: OpAddAddr, NS: nsName, Link: name, Addr: a})
				}
			}
		}
	}
}

// nsRoutes are a namespace's routes: the file's, and the prefixes routed to
// its TUN devices.
func nsRoutes(ns *topology.Namespace) []topology.Route {
	out := append([]topology.Route(nil), ns.Routes...)
	for _, t := range ns.TUNs {
		for _, r := range t.Routes {
			out = append(out, topology.Route{To: r, Dev: t.Name, Pos: t.Pos})
		}
	}
	return out
}

func (p *planner) routes() {
	for _, nsName := range p.nsOrder() {
		ns := p.lab.Namespace(nsName)
		o := p.snap.Namespaces[nsName]
		for _, r := range nsRoutes(ns) {
			want := toState(r)
			found := false
			if o != nil && !p.dirty[nsName] {
				for _, or := range o.Routes {
					if sameRoute(want, or) && p.linkSurvives(nsName, or.Dev) {
						found = true
					}
				}
			}
			if !found {
				p.emit(Action{Op: OpReplaceRoute, NS: nsName, Route: &want})
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

// sameRoute compares a wanted route with an observed one. The observed route
// always names its device; the wanted one may leave it to the kernel.
func sameRoute(want, got state.Route) bool {
	return want.To == got.To && want.Via == got.Via && metric(want) == metric(got) &&
		(want.Dev == "" || want.Dev == got.Dev)
}
