package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// nlSock is a NETLINK_ROUTE socket of the namespace the calling thread was in
// when it was opened: every request on it acts there, whichever thread sends.
type nlSock struct {
	fd  int
	seq uint32
	buf []byte
}

func openNL() (*nlSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &nlSock{fd: fd, buf: make([]byte, 8192)}, nil
}

func (s *nlSock) close() { unix.Close(s.fd) }

// msg builds one request: header, fixed part, attributes.
type msg struct{ b []byte }

func newMsg(typ, flags uint16, fixed []byte) *msg {
	m := &msg{b: make([]byte, unix.SizeofNlMsghdr, 256)}
	binary.NativeEndian.PutUint16(m.b[4:6], typ)
	binary.NativeEndian.PutUint16(m.b[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	m.b = append(m.b, fixed...)
	return m
}

func align4(n int) int { return (n + 3) &^ 3 }

// attr appends an attribute and returns its offset (for nest).
func (m *msg) attr(typ uint16, data []byte) int {
	off := len(m.b)
	l := unix.SizeofRtAttr + len(data)
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:2], uint16(l))
	binary.NativeEndian.PutUint16(h[2:4], typ)
	m.b = append(m.b, h[:]...)
	m.b = append(m.b, data...)
	for len(m.b) < off+align4(l) {
		m.b = append(m.b, 0)
	}
	return off
}

func (m *msg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

func (m *msg) u32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m.attr(typ, b[:])
}

// nest opens a nested attribute; end closes it.
func (m *msg) nest(typ uint16) int { return m.attr(typ, nil) }

func (m *msg) end(off int) {
	binary.NativeEndian.PutUint16(m.b[off:off+2], uint16(len(m.b)-off))
}

func ifinfo(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	binary.NativeEndian.PutUint32(b[12:16], change)
	return b
}

// do sends the request and waits for its acknowledgement.
func (s *nlSock) do(m *msg) error {
	s.seq++
	binary.NativeEndian.PutUint32(m.b[0:4], uint32(len(m.b)))
	binary.NativeEndian.PutUint32(m.b[8:12], s.seq)
	if err := unix.Sendto(s.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err != nil {
			return err
		}
		for b := s.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			typ := binary.NativeEndian.Uint16(b[4:6])
			seq := binary.NativeEndian.Uint32(b[8:12])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("netlink: short message")
			}
			if seq == s.seq && typ == unix.NLMSG_ERROR {
				if errno := int32(binary.NativeEndian.Uint32(b[16:20])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			}
			b = b[align4(l):]
		}
	}
}

// setLink changes a link by index (or by name with index 0): alias, flags,
// master.
func (s *nlSock) setLink(index int32, name, alias string, up bool, master int32) error {
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	m := newMsg(unix.RTM_NEWLINK, 0, ifinfo(index, flags, flags))
	if index == 0 {
		m.str(unix.IFLA_IFNAME, name)
	}
	if alias != "" {
		m.attr(unix.IFLA_IFALIAS, []byte(alias))
	}
	if master != 0 {
		m.u32(unix.IFLA_MASTER, uint32(master))
	}
	return s.do(m)
}

// addVeth makes a veth pair in one request: name here with index (0: the
// kernel's choice), peer in the namespace of peerNS in group.
func (s *nlSock) addVeth(name string, index int32, peer string, peerNS int, group uint32) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifinfo(index, 0, 0))
	m.str(unix.IFLA_IFNAME, name)
	li := m.nest(unix.IFLA_LINKINFO)
	m.str(unix.IFLA_INFO_KIND, "veth")
	data := m.nest(unix.IFLA_INFO_DATA)
	p := m.nest(1) // VETH_INFO_PEER: an ifinfomsg, then the peer's attributes
	// Not up: the kernel opens the peer before it links the pair
	// (veth_open: ENOTCONN).
	m.b = append(m.b, ifinfo(0, 0, 0)...)
	m.str(unix.IFLA_IFNAME, peer)
	m.u32(unix.IFLA_NET_NS_FD, uint32(peerNS))
	m.u32(unix.IFLA_GROUP, group)
	m.end(p)
	m.end(data)
	m.end(li)
	return s.do(m)
}

// addBridge makes a Linux bridge, up, in group; its index comes back from
// a lookup by name.
func (s *nlSock) addBridge(name, alias string, group uint32) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifinfo(0, unix.IFF_UP, unix.IFF_UP))
	m.str(unix.IFLA_IFNAME, name)
	m.u32(unix.IFLA_GROUP, group)
	li := m.nest(unix.IFLA_LINKINFO)
	m.str(unix.IFLA_INFO_KIND, "bridge")
	m.end(li)
	if err := s.do(m); err != nil {
		return err
	}
	return s.setLink(0, name, alias, true, 0)
}

// addAddr adds an IPv4 address to a link by index.
func (s *nlSock) addAddr(index int32, p netip.Prefix) error {
	fixed := make([]byte, unix.SizeofIfAddrmsg)
	fixed[0] = unix.AF_INET
	fixed[1] = byte(p.Bits())
	binary.NativeEndian.PutUint32(fixed[4:8], uint32(index))
	m := newMsg(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, fixed)
	a := p.Addr().As4()
	m.attr(unix.IFA_LOCAL, a[:])
	m.attr(unix.IFA_ADDRESS, a[:])
	return s.do(m)
}

// delGroup deletes every link of an interface group.
func (s *nlSock) delGroup(group uint32) error {
	m := newMsg(unix.RTM_DELLINK, 0, ifinfo(0, 0, 0))
	m.u32(unix.IFLA_GROUP, group)
	return s.do(m)
}
