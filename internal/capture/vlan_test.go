package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// taggedARP is an ARP request in VLAN vid, as a trunk host sends it.
func taggedARP(vid uint16) []byte {
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x30}
	f = binary.BigEndian.AppendUint16(f, 0x8100)
	f = binary.BigEndian.AppendUint16(f, vid)
	f = binary.BigEndian.AppendUint16(f, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x30, 10, 30, 0, 1, 0, 0, 0, 0, 0, 0, 10, 30, 0, 2)
	return append(f, make([]byte, 64-len(f))...)
}

// sendRaw writes a whole frame to interface name of namespace ns through a
// packet socket, as a host that tags its own frames does.
func sendRaw(t *testing.T, ns, name string, frame []byte) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = namespace.Do(h, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6})
	})
	if err != nil {
		t.Fatalf("send a raw frame on %s/%s: %v", ns, name, err)
	}
}

// The kernel takes a received frame's 802.1Q tag out of its data; capture
// puts it back from PACKET_AUXDATA, so both ends of a veth show the tagged
// ARP as sent, and tcpdump's filters read the tag: `vlan 30` keeps it, `vlan
// 20` and `arp` (no tag) do not.
func TestCaptureKeepsVLANTags(t *testing.T) {
	a, b := pairNS(t)
	frame := taggedARP(30)
	for _, tc := range []struct {
		filter string
		want   bool
	}{{"", true}, {"vlan 30", true}, {"vlan 30 and arp", true}, {"vlan 20", false}, {"arp", false}} {
		t.Run(tc.filter, func(t *testing.T) {
			hs, err := OpenAll([]Interface{{NS: a, Name: "va"}, {NS: b, Name: "vb"}}, tc.filter, 0)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			count := 0
			if tc.want {
				count = 2
			}
			wait := collect(t, ctx, hs, count)
			sendRaw(t, a, "va", frame)
			got := wait()
			if !tc.want {
				if len(got) != 0 {
					t.Fatalf("filter %q let %d packets through: %s", tc.filter, len(got), Summary(got[0].Data, LinkTypeEthernet))
				}
				return
			}
			if len(got) != 2 {
				t.Fatalf("%d packets, want the frame on both ends", len(got))
			}
			for _, p := range got {
				if !bytes.Equal(p.Data, frame) || p.Length != len(frame) {
					t.Errorf("%s: %d bytes (wire %d) %x, want the frame as sent %x", hs[p.Iface].Label, len(p.Data), p.Length, p.Data, frame)
				}
				if s := Summary(p.Data, LinkTypeEthernet); !strings.HasPrefix(s, "vlan 30, p 0, ARP") {
					t.Errorf("summary %q", s)
				}
			}
		})
	}
}
