package check

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// Why a socket and not `ping`: exec'ing iputils inside the namespace would
// work too (the child inherits the locked thread's namespace), but it ties
// netlab to one binary and its output (iputils, busybox and inetutils print
// and exit differently, localised), costs a process per probe, and gives no
// structured reason for a failure. An ICMP socket gives exact round-trip
// times, exact counts, and the ICMP errors routers send back ("host
// unreachable from 10.0.0.1").
//
// Which socket: a raw one (SOCK_RAW, needs CAP_NET_RAW, which netlab has as
// root) works in every namespace. The unprivileged "ping socket"
// (SOCK_DGRAM + IPPROTO_ICMP) is gated by net.ipv4.ping_group_range, which is
// per namespace and "1 0" (nobody) in a new one, so it is only the fallback
// when a raw socket is not permitted. A raw socket sees every ICMP message of
// its namespace, so replies are matched on identifier, sequence, source and a
// per-probe nonce; concurrent probes from one namespace do not mix.

// pingMode is the kind of ICMP socket.
type pingMode int

const (
	rawICMP   pingMode = iota // SOCK_RAW: we choose the identifier; sees ICMP errors
	dgramICMP                 // SOCK_DGRAM ping socket: the kernel sets the identifier
)

// pingModes are tried in order; the first socket that opens is used. Tests
// set it to force the fallback.
var pingModes = []pingMode{rawICMP, dgramICMP}

// echoID hands out echo identifiers; random start so that two netlab
// processes are unlikely to share one.
var echoID atomic.Uint32

func init() { echoID.Store(rand.Uint32()) }

const (
	icmp4EchoReply   = 0
	icmp4Unreachable = 3
	icmp4Echo        = 8
	icmp4TimeExceed  = 11
	icmp6Unreachable = 1
	icmp6TimeExceed  = 3
	icmp6Echo        = 128
	icmp6EchoReply   = 129
)

// openPing creates an ICMP socket for addr's family inside ns.
func openPing(ns netns.NsHandle, v6 bool) (net.PacketConn, pingMode, error) {
	var errs []error
	for _, mode := range pingModes {
		var c net.PacketConn
		err := namespace.Do(ns, func() error {
			var err error
			c, err = listenICMP(mode, v6)
			return err
		})
		if err == nil {
			return c, mode, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
			break
		}
	}
	return nil, 0, fmt.Errorf("icmp socket (needs CAP_NET_RAW or net.ipv4.ping_group_range): %w", errors.Join(errs...))
}

// listenICMP opens the socket on the calling (namespace-switched) thread.
func listenICMP(mode pingMode, v6 bool) (net.PacketConn, error) {
	if mode == rawICMP {
		if v6 {
			// The kernel fills in ICMPv6 checksums on raw ICMPv6 sockets.
			return net.ListenPacket("ip6:58", "::")
		}
		return net.ListenPacket("ip4:1", "0.0.0.0")
	}
	fam, proto := unix.AF_INET, unix.IPPROTO_ICMP
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if v6 {
		fam, proto, sa = unix.AF_INET6, unix.IPPROTO_ICMPV6, &unix.SockaddrInet6{}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, fmt.Errorf("socket(SOCK_DGRAM, icmp): %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind icmp: %w", err)
	}
	f := os.NewFile(uintptr(fd), "icmp")
	defer f.Close() // FilePacketConn dups the fd
	return net.FilePacketConn(f)
}

// echo is one echo request or reply.
type echo struct {
	id, seq uint16
	payload []byte
}

func (e echo) marshal(v6 bool) []byte {
	b := make([]byte, 8+len(e.payload))
	b[0] = icmp4Echo
	if v6 {
		b[0] = icmp6Echo
	}
	binary.BigEndian.PutUint16(b[4:], e.id)
	binary.BigEndian.PutUint16(b[6:], e.seq)
	copy(b[8:], e.payload)
	if !v6 { // ICMPv6: the kernel sums it (it covers a pseudo-header)
		binary.BigEndian.PutUint16(b[2:], checksum(b))
	}
	return b
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for ; len(b) >= 2; b = b[2:] {
		s += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// icmpError is an ICMP error message about one of our echo requests.
type icmpError struct {
	id, seq uint16 // of the quoted echo request
	text    string // "host unreachable", "time exceeded"
}

// parseReply classifies an ICMP message (without IP header) received on the
// socket: an echo reply, an error quoting one of our requests to dst, or
// neither (both false).
func parseReply(b []byte, v6 bool, dst netip.Addr) (reply echo, isReply bool, ierr icmpError, isErr bool) {
	if len(b) < 8 {
		return
	}
	typ, code := b[0], b[1]
	if (!v6 && typ == icmp4EchoReply) || (v6 && typ == icmp6EchoReply) {
		return echo{id: binary.BigEndian.Uint16(b[4:]), seq: binary.BigEndian.Uint16(b[6:]), payload: b[8:]}, true, icmpError{}, false
	}
	var text string
	switch {
	case !v6 && typ == icmp4Unreachable:
		text = unreach4[code]
		if text == "" {
			text = fmt.Sprintf("destination unreachable (code %d)", code)
		}
	case !v6 && typ == icmp4TimeExceed, v6 && typ == icmp6TimeExceed:
		text = "time exceeded (ttl/hop limit; routing loop?)"
	case v6 && typ == icmp6Unreachable:
		text = unreach6[code]
		if text == "" {
			text = fmt.Sprintf("destination unreachable (code %d)", code)
		}
	default:
		return
	}
	// The error quotes our packet: its IP header, then the first 8 bytes of
	// the echo request (type, code, checksum, id, seq).
	q := b[8:]
	var inner []byte
	var qdst netip.Addr
	if v6 {
		if len(q) < 40+8 || q[6] != unix.IPPROTO_ICMPV6 {
			return
		}
		qdst = netip.AddrFrom16([16]byte(q[24:40]))
		inner = q[40:]
	} else {
		if len(q) < 20 {
			return
		}
		ihl := int(q[0]&0x0f) * 4
		if ihl < 20 || len(q) < ihl+8 || q[9] != unix.IPPROTO_ICMP {
			return
		}
		qdst = netip.AddrFrom4([4]byte(q[16:20]))
		inner = q[ihl:]
	}
	if qdst != dst.WithZone("") || (!v6 && inner[0] != icmp4Echo) || (v6 && inner[0] != icmp6Echo) {
		return
	}
	return echo{}, false, icmpError{id: binary.BigEndian.Uint16(inner[4:]), seq: binary.BigEndian.Uint16(inner[6:]), text: text}, true
}

var unreach4 = map[byte]string{
	0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
	3: "port unreachable", 4: "fragmentation needed", 9: "network administratively prohibited",
	10: "host administratively prohibited", 13: "administratively prohibited",
}

var unreach6 = map[byte]string{
	0: "no route to destination", 1: "administratively prohibited", 3: "address unreachable",
	4: "port unreachable", 5: "source address failed policy", 6: "reject route",
}

// ping sends o.Count echo requests to addr from namespace ns, o.interval()
// apart, and waits until each has an answer or ctx's deadline passes.
// Reachable = at least one reply.
//
// Equivalent to: `ip netns exec NS ping -c COUNT -W TIMEOUT ADDR`.
func ping(ctx context.Context, ns netns.NsHandle, addr netip.Addr, o Options) (outcome, error) {
	addr = addr.Unmap()
	v6 := addr.Is6()
	c, mode, err := openPing(ns, v6)
	if err != nil {
		return outcome{}, err
	}
	defer c.Close()
	var to net.Addr = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if mode == dgramICMP {
		to = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	id := uint16(echoID.Add(1))
	nonce := binary.BigEndian.AppendUint64([]byte("netlab"), rand.Uint64())
	pc := newPacer(ctx, o)
	sentAt := make([]time.Time, o.Count)
	replied := make([]bool, o.Count)
	var (
		replies, answered int
		rtt               time.Duration
		lastErr           string
		buf               = make([]byte, 2048)
	)
	for answered < o.Count {
		now := time.Now()
		if pc.due(now) {
			msg := echo{id: id, seq: uint16(pc.sent), payload: nonce}.marshal(v6)
			if _, err := c.WriteTo(msg, to); err != nil {
				if replies > 0 {
					break
				}
				// e.g. ENETUNREACH at once when there is no route.
				return outcome{detail: describe(err, o.Timeout)}, nil
			}
			sentAt[pc.sent] = now
			pc.sentAt(now)
		}
		if pc.over(now) {
			break
		}
		c.SetReadDeadline(pc.wake())
		// Checked after SetReadDeadline: if ctx ends from here on, its
		// AfterFunc runs later and its past deadline wins.
		if ctx.Err() != nil {
			break
		}
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if isTimeout(err) {
				continue
			}
			return outcome{}, fmt.Errorf("read icmp: %w", err)
		}
		at := time.Now()
		src, _ := netip.AddrFromSlice(ipOf(from))
		r, isReply, ierr, isErr := parseReply(buf[:n], v6, addr)
		switch {
		case isReply:
			if src.Unmap() != addr.WithZone("") || int(r.seq) >= pc.sent || replied[r.seq] ||
				(mode == rawICMP && r.id != id) || !strings.HasPrefix(string(r.payload), string(nonce)) {
				continue
			}
			replied[r.seq] = true
			replies++
			answered++
			rtt += at.Sub(sentAt[r.seq])
		case isErr && mode == rawICMP:
			if ierr.id != id || int(ierr.seq) >= pc.sent {
				continue
			}
			lastErr = ierr.text + " from " + src.Unmap().String()
			if !replied[ierr.seq] {
				replied[ierr.seq] = true // answered, negatively
				answered++
			}
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return outcome{}, ctx.Err()
	}
	switch {
	case replies > 0:
		return outcome{got: true, detail: fmt.Sprintf("%d/%d replies, %s", replies, pc.sent, ms(rtt/time.Duration(replies)))}, nil
	case lastErr != "":
		return outcome{detail: fmt.Sprintf("0/%d replies, %s", pc.sent, lastErr)}, nil
	}
	return outcome{detail: fmt.Sprintf("0/%d replies, timeout after %s", pc.sent, o.Timeout)}, nil
}

func ipOf(a net.Addr) net.IP {
	switch a := a.(type) {
	case *net.IPAddr:
		return a.IP
	case *net.UDPAddr:
		return a.IP
	}
	return nil
}
