package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rtnl is a NETLINK_ROUTE socket of one namespace (the one the thread that
// opened it was in: every request on it acts there, whichever thread sends
// it), for the requests netlab makes most. Each is one message built with
// exactly the attributes it needs, sent once, its answer read without a
// lookup before or after: a link set by name or index, a veth made with its
// final state and its index read from the kernel's echo, an address added
// by index, whole dumps parsed in place. Safe for concurrent use (requests
// take turns).
type rtnl struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	// broken says an exchange ended without its last answer (a timeout):
	// what is still queued would confuse the next one, so the socket is
	// not used again.
	broken bool
}

// openRTNL opens the socket in the calling thread's namespace, its sends
// and receives bounded by socketTimeout.
func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("netlink socket: %w", err)
		}
	}
	// Big dumps (a host with thousands of links) come in fewer reads.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

// bufs are receive buffers, shared by the sockets: a lab's thousands of
// sockets would otherwise each own one (and a run spent its time zeroing
// fresh pages for them). 32 KiB: the most a dump's message takes when the
// reader offers that much.
var bufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (s *rtnl) close() error { return unix.Close(s.fd) }

// nlmsg is one request being built: header, fixed part, attributes.
type nlmsg struct{ b []byte }

func newNLMsg(typ, flags uint16, fixed []byte) *nlmsg {
	m := &nlmsg{b: make([]byte, unix.SizeofNlMsghdr, 128)}
	binary.NativeEndian.PutUint16(m.b[4:6], typ)
	binary.NativeEndian.PutUint16(m.b[6:8], flags|unix.NLM_F_REQUEST)
	m.b = append(m.b, fixed...)
	return m
}

// attr appends an attribute; its offset is where nest's end finds it.
func (m *nlmsg) attr(typ uint16, data []byte) int {
	off := len(m.b)
	l := unix.SizeofRtAttr + len(data)
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(l))
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = append(m.b, data...)
	for len(m.b) < off+rtaAlign(l) {
		m.b = append(m.b, 0)
	}
	return off
}

func (m *nlmsg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

func (m *nlmsg) u32(typ uint16, v uint32) {
	m.attr(typ, binary.NativeEndian.AppendUint32(nil, v))
}

// nest opens a nested attribute; end closes it.
func (m *nlmsg) nest(typ uint16) int { return m.attr(typ|unix.NLA_F_NESTED, nil) }

func (m *nlmsg) end(off int) {
	binary.NativeEndian.PutUint16(m.b[off:off+2], uint16(len(m.b)-off))
}

// ifinfomsg is struct ifinfomsg: family, type, index, flags, change.
func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	binary.NativeEndian.PutUint32(b[12:16], change)
	return b
}

// rtextFilterSkipStats asks for a link without its statistics
// (RTEXT_FILTER_SKIP_STATS, linux/rtnetlink.h): a smaller answer.
const rtextFilterSkipStats = 1 << 3

// errDumpInterrupted is netlink.ErrDumpInterrupted, so RetryDump retries
// raw dumps too.
var errDumpInterrupted = netlink.ErrDumpInterrupted

// exchange sends m and reads its answers until the acknowledgement (or, for
// a dump, NLMSG_DONE), handing each other message of the exchange to each
// (its type and payload after the header; the payload is valid only during
// the call). A kernel error comes back as a unix.Errno.
func (s *rtnl) exchange(m *nlmsg, each func(typ uint16, body []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	seq := s.seq
	binary.NativeEndian.PutUint32(m.b[0:4], uint32(len(m.b)))
	binary.NativeEndian.PutUint32(m.b[8:12], seq)
	if err := unix.Sendto(s.fd, m.b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	dump := binary.NativeEndian.Uint16(m.b[6:8])&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	interrupted, lost := false, false
	var cbErr error
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	for {
		err := s.receive(bp, func(typ, flags uint16, mseq uint32, body []byte) (bool, error) {
			if mseq != seq {
				return false, nil // an answer to an earlier request that timed out
			}
			if flags&unix.NLM_F_DUMP_INTR != 0 {
				interrupted = true
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return true, fmt.Errorf("netlink: %w", ErrTruncated)
				}
				if errno := int32(binary.NativeEndian.Uint32(body[0:4])); errno != 0 {
					return true, unix.Errno(-errno)
				}
				if !dump {
					return true, cbErr
				}
				return false, nil
			case unix.NLMSG_DONE:
				if len(body) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(body[0:4])); errno < 0 {
						return true, unix.Errno(-errno)
					}
				}
				if interrupted || lost {
					return true, errDumpInterrupted
				}
				return true, cbErr
			default:
				if each != nil && cbErr == nil {
					cbErr = each(typ, body)
				}
			}
			return false, nil
		})
		var trunc *truncatedError
		if !errors.As(err, &trunc) {
			return err
		}
		// Lost (the buffer is bigger now). A dump is worth another try
		// (RetryDump) once this one is read to its end; a request not
		// (it may have been done).
		if !dump {
			s.broken = true
			return err
		}
		lost = true
	}
}

// truncatedError says an answer did not fit the receive buffer, which
// receive made big enough for it since.
type truncatedError struct{ n int }

func (e *truncatedError) Error() string {
	return fmt.Sprintf("netlink receive: answer of %d bytes truncated", e.n)
}

// receive reads the socket's messages, handing each one's type, flags,
// sequence number and payload (valid only during the call) to fn until fn
// says to stop, and returns fn's error then. A message that did not fit
// *bp (which then grows) ends it with a *truncatedError; a failed read or
// a malformed message marks the socket broken (what is still queued would
// confuse the next exchange).
func (s *rtnl) receive(bp *[]byte, fn func(typ, flags uint16, seq uint32, body []byte) (stop bool, err error)) error {
	for {
		buf := *bp
		// MSG_TRUNC: n is the message's whole length, even when the
		// buffer was too small for it.
		n, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			s.broken = true
			return fmt.Errorf("netlink receive: %w", err)
		}
		if n > len(buf) {
			*bp = make([]byte, rtaAlign(n))
			return &truncatedError{n}
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				s.broken = true
				return fmt.Errorf("netlink receive: %w", ErrTruncated)
			}
			typ := binary.NativeEndian.Uint16(b[4:6])
			flags := binary.NativeEndian.Uint16(b[6:8])
			seq := binary.NativeEndian.Uint32(b[8:12])
			body := b[unix.SizeofNlMsghdr:l]
			b = b[min(rtaAlign(l), len(b)):]
			if stop, err := fn(typ, flags, seq, body); stop || err != nil {
				return err
			}
		}
	}
}

// linkChange is what one RTM_NEWLINK on an existing link changes; zero
// values change nothing.
type linkChange struct {
	alias    string
	setAlias bool // set alias, even to ""
	up, down bool
	mtu      int
	mac      []byte
	master   int32 // index of the new master
	noMaster bool
	group    uint32
	setGroup bool
}

// setLink changes the link of index, or (index 0) named name, in one
// request.
// Equivalent to: `ip link set NAME|dev IDX [alias A] [up|down] [mtu M]
// [address MAC] [master BR|nomaster] [group G]`.
func (s *rtnl) setLink(index int32, name string, c linkChange) error {
	var flags, change uint32
	switch {
	case c.up:
		flags, change = unix.IFF_UP, unix.IFF_UP
	case c.down:
		change = unix.IFF_UP
	}
	m := newNLMsg(unix.RTM_NEWLINK, unix.NLM_F_ACK, ifinfomsg(index, flags, change))
	if index == 0 {
		m.str(unix.IFLA_IFNAME, name)
	}
	c.appendTo(m)
	return s.exchange(m, nil)
}

func (c linkChange) appendTo(m *nlmsg) {
	if c.setAlias {
		m.attr(unix.IFLA_IFALIAS, []byte(c.alias))
	}
	if c.mtu != 0 {
		m.u32(unix.IFLA_MTU, uint32(c.mtu))
	}
	if len(c.mac) > 0 {
		m.attr(unix.IFLA_ADDRESS, c.mac)
	}
	if c.master != 0 {
		m.u32(unix.IFLA_MASTER, uint32(c.master))
	} else if c.noMaster {
		m.u32(unix.IFLA_MASTER, 0)
	}
	if c.setGroup {
		m.u32(unix.IFLA_GROUP, c.group)
	}
}

// vethSpec is a veth pair to make in one request: Name here (in the
// socket's namespace), Peer in the namespace of PeerNS (-1: here), each
// with the state it can be given at creation.
type vethSpec struct {
	name, peer   string
	peerNS       int
	mtu, peerMTU int
	mac, peerMAC []byte
	up           bool  // this end; the peer cannot be (veth_open: ENOTCONN before the pair is linked)
	master       int32 // this end's master (a bridge here)
	group        uint32
	peerGroup    uint32
}

// addVeth makes the pair and returns the index of its end here, read from
// the kernel's echo of the new link (NLM_F_ECHO, kernel 6.3 and later) or,
// on older kernels, asked for. EEXIST (fs.ErrExist) if a name is taken.
// Equivalent to: `ip link add NAME [mtu M] [address MAC] [up] type veth
// peer name PEER [mtu M] [address MAC] netns NS`.
func (s *rtnl) addVeth(v vethSpec) (int32, error) {
	var flags uint32
	if v.up {
		flags = unix.IFF_UP
	}
	m := newNLMsg(unix.RTM_NEWLINK, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ECHO, ifinfomsg(0, flags, flags))
	m.str(unix.IFLA_IFNAME, v.name)
	if v.mtu != 0 {
		m.u32(unix.IFLA_MTU, uint32(v.mtu))
	}
	if len(v.mac) > 0 {
		m.attr(unix.IFLA_ADDRESS, v.mac)
	}
	if v.master != 0 {
		m.u32(unix.IFLA_MASTER, uint32(v.master))
	}
	if v.group != 0 {
		m.u32(unix.IFLA_GROUP, v.group)
	}
	li := m.nest(unix.IFLA_LINKINFO)
	m.str(unix.IFLA_INFO_KIND, "veth")
	data := m.nest(unix.IFLA_INFO_DATA)
	p := m.nest(1) // VETH_INFO_PEER: an ifinfomsg, then the peer's attributes
	m.b = append(m.b, ifinfomsg(0, 0, 0)...)
	m.str(unix.IFLA_IFNAME, v.peer)
	if v.peerNS >= 0 {
		m.u32(unix.IFLA_NET_NS_FD, uint32(v.peerNS))
	}
	if v.peerMTU != 0 {
		m.u32(unix.IFLA_MTU, uint32(v.peerMTU))
	}
	if len(v.peerMAC) > 0 {
		m.attr(unix.IFLA_ADDRESS, v.peerMAC)
	}
	if v.peerGroup != 0 {
		m.u32(unix.IFLA_GROUP, v.peerGroup)
	}
	m.end(p)
	m.end(data)
	m.end(li)
	var index int32
	err := s.exchange(m, func(typ uint16, body []byte) error {
		if typ == unix.RTM_NEWLINK && len(body) >= unix.SizeofIfInfomsg {
			index = int32(binary.NativeEndian.Uint32(body[4:8]))
		}
		return nil
	})
	if err != nil || index != 0 {
		return index, err
	}
	return s.linkIndex(v.name)
}

// linkIndex asks for a link's index by name; ErrLinkNotFound if there is
// none. Equivalent to: `ip link show NAME`.
func (s *rtnl) linkIndex(name string) (int32, error) {
	m := newNLMsg(unix.RTM_GETLINK, unix.NLM_F_ACK, ifinfomsg(0, 0, 0))
	m.str(unix.IFLA_IFNAME, name)
	m.u32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	var index int32
	err := s.exchange(m, func(typ uint16, body []byte) error {
		if typ == unix.RTM_NEWLINK && len(body) >= unix.SizeofIfInfomsg {
			index = int32(binary.NativeEndian.Uint32(body[4:8]))
		}
		return nil
	})
	if errors.Is(err, unix.ENODEV) {
		return 0, ErrLinkNotFound
	}
	if err == nil && index == 0 {
		err = ErrLinkNotFound
	}
	return index, err
}

// getLink reads one link by index or name, its message handed to fn.
// Equivalent to: `ip -d link show NAME`.
func (s *rtnl) getLink(index int32, name string, fn func(body []byte) error) error {
	m := newNLMsg(unix.RTM_GETLINK, unix.NLM_F_ACK, ifinfomsg(index, 0, 0))
	if index == 0 {
		m.str(unix.IFLA_IFNAME, name)
	}
	m.u32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	found := false
	err := s.exchange(m, func(typ uint16, body []byte) error {
		if typ != unix.RTM_NEWLINK {
			return nil
		}
		found = true
		return fn(body)
	})
	if errors.Is(err, unix.ENODEV) || err == nil && !found {
		return ErrLinkNotFound
	}
	return err
}

// dump runs a dump request of typ (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE)
// over every family, handing each message's payload to fn.
// errDumpInterrupted if the kernel says the objects changed meanwhile.
func (s *rtnl) dump(typ uint16, fn func(body []byte) error) error {
	var fixed []byte
	switch typ {
	case unix.RTM_GETLINK:
		fixed = ifinfomsg(0, 0, 0)
	case unix.RTM_GETADDR:
		fixed = make([]byte, unix.SizeofIfAddrmsg)
	case unix.RTM_GETROUTE:
		fixed = make([]byte, unix.SizeofRtMsg)
	default:
		return fmt.Errorf("netlink: no dump of message type %d", typ)
	}
	m := newNLMsg(typ, unix.NLM_F_DUMP, fixed)
	return s.exchange(m, func(t uint16, body []byte) error {
		if t == typ-2 { // RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE answer the GETs
			return fn(body)
		}
		return nil
	})
}

// addAddr adds an address to the link of index, or replaces it.
// Equivalent to: `ip addr replace P dev IDX [nodad]`.
func (s *rtnl) addAddr(index int32, family, bits int, addr []byte, nodad bool) error {
	fixed := make([]byte, unix.SizeofIfAddrmsg)
	fixed[0] = byte(family)
	fixed[1] = byte(bits)
	binary.NativeEndian.PutUint32(fixed[4:8], uint32(index))
	var flags uint32
	if nodad {
		flags = unix.IFA_F_NODAD
		fixed[2] = byte(flags)
	}
	m := newNLMsg(unix.RTM_NEWADDR, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE, fixed)
	m.attr(unix.IFA_LOCAL, addr)
	m.attr(unix.IFA_ADDRESS, addr)
	if family == unix.AF_INET {
		// As iproute2: the broadcast address of the prefix, so the kernel
		// stores what `ip addr add` would.
		brd := make([]byte, 4)
		copy(brd, addr)
		if bits < 31 {
			for i := bits; i < 32; i++ {
				brd[i/8] |= 0x80 >> (i % 8)
			}
			m.attr(unix.IFA_BROADCAST, brd)
		}
	}
	if flags != 0 {
		m.u32(unix.IFA_FLAGS, flags)
	}
	return s.exchange(m, nil)
}

// ethtool runs one SIOCETHTOOL command with a struct ethtool_value through
// this socket: the ioctl finds the device in the socket's namespace, so no
// thread enters it.
func (s *rtnl) ethtool(ifname string, cmd, data uint32) (uint32, error) {
	return ethtoolOn(s.fd, ifname, cmd, data)
}
