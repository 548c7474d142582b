package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"reflect"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// benchHost is a namespace with n veth pairs, each end marked, as a host
// with a lab of n namespaces has (their peers live here too: one
// namespace is enough for what observing costs per link).
func benchHost(b *testing.B, n int) *NS {
	b.Helper()
	name := fmt.Sprintf("nlkb%04x", n)
	if err := namespace.Create(name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { namespace.Delete(name) })
	ns, err := Open(name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ns.Close() })
	err = ns.raw(func(s *rtnl) error {
		h, err := ns.handle()
		if err != nil {
			return err
		}
		for i := range n {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("p%03d", i)}, PeerName: fmt.Sprintf("q%03d", i)}
			if err := h.LinkAdd(v); err != nil {
				return err
			}
			if err := h.LinkSetAlias(v, state.LinkAlias("bench", "host", v.Name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ns
}

// BenchmarkObserveLinks is what down reads of the host for each link of a
// lab of 250 namespaces.
func BenchmarkObserveLinks(b *testing.B) {
	ns := benchHost(b, 250)
	b.Run("observe", func(b *testing.B) {
		for b.Loop() {
			if _, err := ns.ObserveLinks(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dump", func(b *testing.B) {
		for b.Loop() {
			err := ns.raw(func(s *rtnl) error {
				return s.dump(unix.RTM_GETLINK, func([]byte) error { return nil })
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("deserialize", func(b *testing.B) {
		for b.Loop() {
			err := ns.raw(func(s *rtnl) error {
				return s.dump(unix.RTM_GETLINK, func(body []byte) error {
					body = clone(body)
					_, err := netlink.LinkDeserialize(nil, body)
					return err
				})
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// parseRawLink reads what netlink's Go code reads of each kind netlab
// meets, from real links: lo, veths (one on a bridge), a bridge, a VXLAN with a local address, port and device, TUN and TAP with
// their flags and owners. (VLAN interfaces and VLAN filtering, which this
// project's kernels lack, are TestParseRawLinkKinds'.)
func TestParseRawLinkMatchesNetlink(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	h := testHandle(t, n)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	must(t, h.LinkAdd(br))
	must(t, h.LinkSetMTU(br, 1400))
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}
	must(t, h.LinkAdd(v))
	must(t, h.LinkSetMaster(v, br))
	must(t, h.LinkSetAlias(v, state.LinkAlias("lab", "host", "v0")))
	must(t, h.LinkSetUp(v))
	must(t, h.LinkSetUp(br))
	peer, err := h.LinkByName("v1")
	must(t, err)
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vx0"}, VxlanId: 4242, Port: 4790, VtepDevIndex: peer.Attrs().Index, SrcAddr: net.ParseIP("192.0.2.1")}
	must(t, h.LinkAdd(vx))
	must(t, n.AddTuntap("tun7", "netlab:test:x/tun7", state.Tuntap{MultiQueue: true, VnetHdr: true, Owner: -1, Group: -1}))
	must(t, n.AddTuntap("tap7", "netlab:test:x/tap7", state.Tuntap{TAP: true, Owner: 65534, Group: 65534}))

	seen := map[string]bool{}
	must(t, n.raw(func(s *rtnl) error {
		return s.dump(unix.RTM_GETLINK, func(body []byte) error {
			got, err := parseRawLink(body)
			if err != nil {
				return err
			}
			nl, err := netlink.LinkDeserialize(nil, clone(body))
			if err != nil {
				return err
			}
			a := nl.Attrs()
			seen[a.Name] = true
			want := rawLink{
				LinkLayerInfo: got.LinkLayerInfo,
				kind:          nl.Type(),
				alias:         a.Alias,
				mtu:           a.MTU,
				operState:     uint8(a.OperState),
				master:        a.MasterIndex,
				parent:        a.ParentIndex,
			}
			if len(a.HardwareAddr) > 0 {
				want.hwAddr = a.HardwareAddr
			}
			if st := a.Statistics; st != nil {
				want.rxPackets, want.txPackets = st.RxPackets, st.TxPackets
			}
			switch l := nl.(type) {
			case *netlink.Vxlan:
				want.vxlanID, want.vxlanPort, want.vxlanDev = l.VxlanId, l.Port, l.VtepDevIndex
				want.vxlanLocal = l.SrcAddr
			case *netlink.Tuntap:
				want.tunTAP = l.Mode == netlink.TUNTAP_MODE_TAP
				want.tunMultiQueue = l.Flags&netlink.TUNTAP_MULTI_QUEUE != 0
				want.tunVnetHdr = l.Flags&netlink.TUNTAP_VNET_HDR != 0
			case *netlink.Bridge:
				want.vlanFiltering = l.VlanFiltering != nil && *l.VlanFiltering
			}
			if got.Name != a.Name || got.Index != int32(a.Index) || got.Flags != a.RawFlags {
				t.Errorf("%s: name %q index %d flags %#x, netlink: %q %d %#x", a.Name, got.Name, got.Index, got.Flags, a.Name, a.Index, a.RawFlags)
			}
			if !reflect.DeepEqual(got, want) {
				// %#v: the embedded LinkLayerInfo's String would print only itself.
				t.Errorf("%s:\n got %#v\nwant %#v", a.Name, got, want)
			}
			return nil
		})
	}))
	for _, name := range []string{"lo", "br0", "v0", "v1", "vx0", "tun7", "tap7"} {
		if !seen[name] {
			t.Errorf("%s not in the dump", name)
		}
	}
}

// The kinds' attributes TestParseRawLinkMatchesNetlink cannot make here: a
// VLAN interface's id and parent, a bridge that filters VLANs.
func TestParseRawLinkKinds(t *testing.T) {
	kind := func(k string) attr { return attr{iflaInfoKind, []byte(k + "\x00")} }
	vlan := linkMsg(unix.ARPHRD_ETHER, 5, unix.IFF_UP, name("eth0.7"), u32(unix.IFLA_LINK, 2),
		nested(unix.IFLA_LINKINFO, kind("vlan"), nested(iflaInfoData, attr{iflaVlanID, []byte{7, 0}})))
	got, err := parseRawLink(vlan)
	if err != nil || got.kind != "vlan" || got.vlanID != 7 || got.parent != 2 || got.Name != "eth0.7" {
		t.Errorf("vlan: %+v, %v", got, err)
	}
	br := linkMsg(unix.ARPHRD_ETHER, 6, 0, name("br0"),
		nested(unix.IFLA_LINKINFO, kind("bridge"), nested(iflaInfoData, attr{iflaBrVlanFiltering, []byte{1}})))
	if got, err := parseRawLink(br); err != nil || got.kind != "bridge" || !got.vlanFiltering {
		t.Errorf("bridge: %+v, %v", got, err)
	}
	// The same attribute number means something else for another kind.
	other := linkMsg(unix.ARPHRD_ETHER, 6, 0, name("x0"),
		nested(unix.IFLA_LINKINFO, kind("macvlan"), nested(iflaInfoData, attr{iflaBrVlanFiltering, []byte{1}})))
	if got, err := parseRawLink(other); err != nil || got.kind != "macvlan" || got.vlanFiltering {
		t.Errorf("macvlan: %+v, %v", got, err)
	}
	if got, err := parseRawLink(linkMsg(unix.ARPHRD_LOOPBACK, 1, 0, name("lo"))); err != nil || got.kind != "device" {
		t.Errorf("no kind: %+v, %v", got, err)
	}
}

// An answer bigger than the buffer is reported as truncated and the buffer
// grows to fit it; the next read goes on with the following answers.
func TestReceiveGrowsBuffer(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	must(t, n.raw(func(s *rtnl) error {
		m := newNLMsg(unix.RTM_GETLINK, unix.NLM_F_DUMP, ifinfomsg(0, 0, 0))
		binary.NativeEndian.PutUint32(m.b[0:4], uint32(len(m.b)))
		if err := unix.Sendto(s.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		buf := make([]byte, 16)
		var trunc *truncatedError
		if err := s.receive(&buf, func(uint16, uint16, uint32, []byte) (bool, error) { return true, nil }); !errors.As(err, &trunc) || len(buf) < trunc.n {
			t.Errorf("a 16-byte buffer: %v, buffer now %d bytes", err, len(buf))
		}
		done := false
		err := s.receive(&buf, func(typ, _ uint16, _ uint32, _ []byte) (bool, error) {
			done = typ == unix.NLMSG_DONE
			return done, nil
		})
		if err != nil || !done {
			t.Errorf("reading on: %v, done %v", err, done)
		}
		return nil
	}))
}
