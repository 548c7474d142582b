package plan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Tunnels: a machine's part of a multi-machine lab has a VXLAN device for
// each end of a link to another machine (topology.ForMachine): in a
// namespace, the interface itself; on a bridge, a port. The plan makes the
// device from the host (its UDP socket stays there, on the underlay), sets
// its remote ends, and sizes the MTU of everything behind it to what the
// underlay can carry.

const kindVXLAN = state.KindVXLAN

// addTunnels adds the lab's tunnel devices to the wanted links.
func addTunnels(want map[string]map[string]*wantLink, lab *topology.Lab, add func(*wantLink)) {
	for _, t := range lab.Tunnels {
		// Transmit checksum offload off on every tunnel: a frame sent with
		// its checksum left to the hardware keeps that promise through the
		// encapsulation, the underlay and the decapsulation on the other
		// machine, where an OVS userspace bridge forwards it unfilled (the
		// receiver drops it: ping works, TCP does not). The far end may be
		// such a bridge whatever this one is.
		w := &wantLink{ns: t.NS, name: t.Name, alias: state.LinkAlias(lab.Name, t.NS, t.Name), kind: kindVXLAN,
			mac: t.MAC, mtu: t.MTU, addrs: t.Addresses, pos: t.Pos, path: t.Path, vx: t, txOff: true}
		if b := lab.Bridge(t.Bridge); b != nil {
			if b.Type == topology.BridgeLinux {
				w.master = b.Name
			} else {
				// What the device decapsulates it merges (GRO) into frames
				// up to 64 KiB; the userspace switch reads one MTU at a time
				// and drops them.
				w.ovsPort, w.groOff = true, true
			}
		}
		add(w)
	}
}

// tunnelMTUs gives every tunnel the MTU its underlay leaves for the inner
// frames (the underlay's minus VXLAN's overhead), and everything on a
// bridge with a tunnel port the same: the bridge's own interface and every
// veth end on it. A larger MTU the file asks for cannot cross: it is an
// error at its line. Without the underlay (the machine's address is on no
// interface here) nothing can be planned.
func (p *planner) tunnelMTUs() error {
	if len(p.lab.Tunnels) == 0 {
		return nil
	}
	me := p.lab.MachineByName(p.lab.Machine)
	u := p.snap.Underlay
	if u == nil {
		if me.Interface != "" {
			return fmt.Errorf("machine %s: its underlay interface %s is not on this machine", me.Name, me.Interface)
		}
		return fmt.Errorf("machine %s: its address %s is on no interface of this machine (is this machine %s?)", me.Name, me.Address, me.Name)
	}
	var errs topology.ErrorList
	fit := func(w *wantLink, inner int, why string) {
		switch {
		case w.mtu == 0:
			w.mtu = inner
		case w.mtu > inner:
			errs = append(errs, &topology.Error{File: p.lab.File, Pos: w.pos, Path: w.path,
				Msg: fmt.Sprintf("mtu %d cannot cross %s: the underlay %s has MTU %d and VXLAN takes %d of it, so at most %d (or leave mtu out)",
					w.mtu, why, u.Dev, u.MTU, topology.VXLANOverhead(me.Address), inner)})
		}
	}
	inner := u.MTU - topology.VXLANOverhead(me.Address)
	segment := map[string]string{} // bridge -> the tunnel that sets its MTU
	for _, t := range p.lab.Tunnels {
		fit(p.want[t.NS][t.Name], inner, "the tunnel to "+t.To)
		if t.Bridge != "" && segment[t.Bridge] == "" {
			segment[t.Bridge] = t.To
		}
	}
	for _, b := range p.lab.Bridges {
		to := segment[b.Name]
		if to == "" {
			continue
		}
		why := "bridge " + b.Name + "'s tunnel to " + to
		fit(p.want[topology.Host][b.Name], inner, why)
		for _, port := range b.Ports {
			if port.Tunnel {
				continue
			}
			if w := p.want[topology.Host][port.Name]; w != nil {
				fit(w, inner, why)
			}
			if w := p.want[port.Peer.NS][port.Peer.Name]; w != nil {
				fit(w, inner, why)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// sameVXLAN says whether a device can stay: the kernel cannot change a
// VXLAN device's VNI, address, port or underlay in place.
func (p *planner) sameVXLAN(w *wantLink, o *state.VXLAN) bool {
	t := w.vx
	dev := 0
	if t.Dev != "" && p.snap.Underlay != nil {
		dev = p.snap.Underlay.Index
	}
	return o != nil && o.VNI == t.VNI && o.Local == t.Local && o.Port == topology.VXLANPort && o.DevIndex == dev
}

// tunnels makes the missing tunnel devices and gives each its remotes.
func (p *planner) tunnels() {
	for _, t := range p.lab.Tunnels {
		w := p.want[t.NS][t.Name]
		o := p.exists(t.NS, t.Name)
		if o == nil {
			p.emit(AddVXLAN{NS: t.NS, Link: t.Name, Alias: w.alias,
				VXLAN: &state.VXLANConfig{VNI: t.VNI, Local: t.Local, Dev: t.Dev, Port: topology.VXLANPort}})
		}
		var have []netip.Addr
		if o != nil && o.VXLAN != nil {
			have = o.VXLAN.Remotes
		}
		want := slices.Clone(t.Remotes)
		slices.SortFunc(want, netip.Addr.Compare)
		if slices.Equal(have, want) {
			continue
		}
		a := SetRemotes{NS: t.NS, Link: t.Name, Remotes: want}
		for _, r := range have {
			if !slices.Contains(want, r) {
				a.Removed = append(a.Removed, r)
			}
		}
		for _, r := range want {
			if !slices.Contains(have, r) {
				a.Added = append(a.Added, r)
			}
		}
		p.emit(a)
	}
}
