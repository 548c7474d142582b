package reflector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/netlab-dev/netlab/internal/tundev"
)

// Device is one packet queue: each Read returns one whole packet and each
// Write sends one (wireguard-go's tun.Device, reduced to a single queue). A
// *Queue (what OpenQueues attaches), an *os.File on /dev/net/tun and a
// ChannelDevice are Devices.
type Device interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	Close() error
}

// framed is implemented by a Device whose packets start with a fixed-size
// header that Run must skip and write back unchanged (the virtio_net_hdr of
// VnetHdr, or of a Queue attached with it).
type framed interface {
	HeaderLen() int
}

// VnetHdrLen is the size of struct virtio_net_hdr, the prefix of every packet
// on a TUN queue opened with IFF_VNET_HDR (the kernel's default
// TUNSETVNETHDRSZ).
const VnetHdrLen = tundev.VnetHdrLen

// VnetHdr wraps a TUN queue opened with IFF_VNET_HDR: Run then skips the
// 10-byte virtio_net_hdr in front of each packet and writes it back as read,
// which is correct because reflecting changes no checksum, partial or not, so
// a GSO super-packet (up to 64 KiB) goes back to the kernel whole and is
// segmented, if at all, by the receiver.
func VnetHdr(dev Device) Device { return vnetDevice{dev} }

type vnetDevice struct{ Device }

func (vnetDevice) HeaderLen() int { return VnetHdrLen }

// Stats counts what Run did. The fields are updated atomically and may be
// read while Run runs. Several Runs may share one Stats, but one per queue
// avoids sharing a cache line between CPUs; add them up with Add.
type Stats struct {
	Packets atomic.Uint64 // packets reflected and written back
	Bytes   atomic.Uint64 // their bytes (IP packets, without virtio_net_hdr)
	Drops   atomic.Uint64 // packets not written back: not IP, short, truncated, or the write failed
}

// Add adds o's counters to s.
func (s *Stats) Add(o *Stats) {
	s.Packets.Add(o.Packets.Load())
	s.Bytes.Add(o.Bytes.Load())
	s.Drops.Add(o.Drops.Load())
}

// maxPacket is the largest packet a TUN queue can hand out: a 64 KiB GSO
// super-packet (or an MTU 65535 packet) plus the virtio_net_hdr.
const maxPacket = 65535 + VnetHdrLen

// Run reads packets from dev, reflects each one (see Reflect) and writes it
// back, until ctx is done or dev is closed (or, for a TUN queue, its device
// deleted); all are a clean stop and return nil. When ctx is done Run closes
// dev to wake its blocked Read, so Run owns dev. Bad packets are dropped and
// counted in st.Drops, and so are packets whose write fails (e.g. EIO while
// the link is down); Run only returns an error for a Read that fails for
// another reason than closing. On a *Queue (also behind VnetHdr) Run reads
// in bursts and counts in batches: see runQueue.
//
// If log is not nil, Run calls it for every packet with one line describing
// the packet as it was READ, before reflection: "72: fe80::1->fd2a::23"
// (IP length: source->destination), so the line reads as "who sent what to
// whom"; the packet written back goes the other way. Dropped packets are
// logged as "3: drop". Logging costs an allocation per packet; with a nil
// log the loop allocates nothing.
func Run(ctx context.Context, dev Device, st *Stats, log func(string)) error {
	l := reflection{st: st, log: log}
	if f, ok := dev.(framed); ok {
		l.off = f.HeaderLen()
	}
	if q := queueIn(dev); q != nil {
		return runQueue(ctx, q, &l)
	}
	return readPackets(ctx, dev, func(dev Device, buf []byte) error {
		ok := l.reflect(ctx, dev, buf)
		l.flush()
		if !ok {
			return errStop
		}
		return nil
	})
}

// reflection is what Run does with each packet, and its counts not yet
// added to st.
type reflection struct {
	off            int // header length: bytes before the IP packet
	st             *Stats
	log            func(string)
	packets, bytes uint64 // reflected, not yet in st
}

// reflect reflects buf (header included) and writes it back to dev,
// counting it; it returns false if the write found dev closed or ctx done.
// Drops are counted in st at once, reflected packets locally (see flush).
func (l *reflection) reflect(ctx context.Context, dev Device, buf []byte) bool {
	if len(buf) < l.off {
		l.st.Drops.Add(1)
		if l.log != nil {
			l.log(strconv.Itoa(len(buf)) + ": drop")
		}
		return true
	}
	pkt := buf[l.off:]
	if l.log != nil {
		l.log(describe(pkt))
	}
	if !Reflect(pkt) {
		l.st.Drops.Add(1)
		return true
	}
	if _, err := dev.Write(buf); err != nil {
		if isClosed(err) || ctx.Err() != nil {
			return false
		}
		l.st.Drops.Add(1)
		return true
	}
	l.packets++
	l.bytes += uint64(len(pkt))
	return true
}

// flush adds the packets and bytes counted since the last flush to st.
func (l *reflection) flush() {
	if l.packets != 0 {
		l.st.Packets.Add(l.packets)
		l.st.Bytes.Add(l.bytes)
		l.packets, l.bytes = 0, 0
	}
}

// errStop, returned by a readPackets handler, ends the loop cleanly.
var errStop = errors.New("stop")

// readPackets is the read side of a loop that handles one packet at a time
// (Run on devices other than a Queue, and the TUN→UDP bridge): it closes
// dev when ctx is done, and calls handle with each packet read (header
// included) until dev is closed or gone, or handle returns errStop (nil
// then), or a read fails otherwise or handle returns another error (that
// error). handle gets the device to write back to: dev itself, or for a
// *Queue (also behind VnetHdr) a view of it that the loop has pinned open
// for its whole run (see pinnedQueue).
func readPackets(ctx context.Context, dev Device, handle func(dev Device, buf []byte) error) error {
	stop := context.AfterFunc(ctx, func() { dev.Close() })
	defer stop()

	if q := queueIn(dev); q != nil {
		if !q.acquire() {
			return nil // closed before we started
		}
		defer q.release()
		dev = pinnedQueue{q}
	}
	buf := make([]byte, maxPacket)
	for {
		n, err := dev.Read(buf)
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		if err := handle(dev, buf[:n]); err != nil {
			if err == errStop {
				return nil
			}
			return err
		}
	}
}

// queueIn returns the *Queue dev is, looking through VnetHdr, or nil.
func queueIn(dev Device) *Queue {
	for {
		switch d := dev.(type) {
		case *Queue:
			return d
		case vnetDevice:
			dev = d.Device
		default:
			return nil
		}
	}
}

// isClosed reports whether err means the device was closed under us, or is
// gone: a TUN queue whose device was deleted (`ip link del`, or its namespace
// destroyed) fails reads with EBADFD.
func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.EBADFD)
}

// describe renders pkt as "len: src->dst", or "len: drop" when it is not
// an IP packet Reflect would accept.
func describe(pkt []byte) string {
	src, dst, ok := addrs(pkt)
	if !ok {
		return strconv.Itoa(len(pkt)) + ": drop"
	}
	return strconv.Itoa(len(pkt)) + ": " + src.String() + "->" + dst.String()
}

// addrs returns pkt's source and destination if Reflect would accept it.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	switch version(pkt) {
	case 4:
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}
