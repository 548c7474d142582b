package observe

import (
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// underlay finds the host interface a machine's tunnels go over: the one
// the file names, else the one with the machine's address. It reads the
// host's links before the snapshot keeps only the lab's.
func underlay(lab *topology.Lab, host *state.Namespace) *state.Underlay {
	me := lab.MachineByName(lab.Machine)
	if me == nil {
		return nil
	}
	for _, name := range state.SortedNames(host.Links) {
		l := host.Links[name]
		match := name == me.Interface
		if me.Interface == "" {
			match = slices.ContainsFunc(l.Addrs, func(p netip.Prefix) bool { return p.Addr() == me.Address })
		}
		if match {
			return &state.Underlay{Dev: name, Index: l.Index, MTU: l.MTU}
		}
	}
	return nil
}

// HostAddrs lists the addresses of this machine's interfaces (in the host
// namespace): which machine of a lab this one is.
func HostAddrs() ([]netip.Addr, error) {
	h, err := kernel.Open(topology.Host)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	o, err := h.Observe(nil)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, l := range o.Links {
		for _, p := range l.Addrs {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// defaultRouteDevs reads the host's default-route interfaces from /proc
// (the process's own namespace is the host's).
func defaultRouteDevs() []string {
	var devs []string
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
			if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
				devs = append(devs, f[0])
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/ipv6_route"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			// dest plen src splen nexthop metric refcnt use flags dev
			if len(f) == 10 && f[0] == strings.Repeat("0", 32) && f[1] == "00" && f[9] != "lo" {
				devs = append(devs, f[9])
			}
		}
	}
	return devs
}

// observeHostShares reads what the host namespace shares with the machine
// and with other labs: the routes of others to the destinations the lab
// routes there, and the host sysctls other labs hold (the ledger).
func (s *Reader) observeHostShares(lab string, routes []topology.Route, host *state.Namespace, snap *state.Snapshot) error {
	if len(routes) > 0 {
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		dsts := make([]netip.Prefix, len(routes))
		for i, r := range routes {
			dsts[i] = r.To
		}
		if host.Foreign, err = h.ForeignRoutes(dsts); err != nil {
			return err
		}
	}
	ledger, err := s.Store.ReadSysctls()
	if err != nil {
		return err
	}
	for key := range ledger.Keys {
		if others := ledger.Others(key, lab); others != nil {
			if snap.SysctlHolders == nil {
				snap.SysctlHolders = map[string]map[string]string{}
			}
			snap.SysctlHolders[key] = others
		}
	}
	return nil
}
