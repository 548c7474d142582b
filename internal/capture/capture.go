// Package capture records the packets of a lab's interfaces: one AF_PACKET
// socket per interface, opened inside the interface's network namespace,
// read until a count, a deadline or a cancel, and handed on as pcapng or
// pcap (Wireshark's and tcpdump's formats) or as one decoded line each.
//
// Why AF_PACKET and not libpcap: netlab builds without cgo libpcap, and a
// packet socket is all libpcap itself uses on Linux. The socket belongs to
// the namespace it was created in, so it is made inside namespace.Do and
// then read from any goroutine; its reads go through the Go netpoller, so
// closing it ends a blocked read at once.
//
// Equivalent to: `ip netns exec NS tcpdump -i IFACE -w FILE [FILTER]`.
package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// DefaultSnapLen is how many bytes of each packet are kept, as tcpdump's
// default: whole packets, also the 64 KiB GSO packets a veth may carry.
const DefaultSnapLen = 262144

// Interface is one interface of a capture.
type Interface struct {
	NS    string // machine name of its network namespace; "host": the process's own
	Name  string // interface name inside NS
	Label string // how output names it, e.g. "blue/veth1"
	// LinkType is what its packets start with: Ethernet, or raw IP for a
	// TUN (ARPHRD_NONE).
	LinkType LinkType
	Index    int // ifindex inside NS
	// Reversed: NS/Name is the veth peer of the interface Label names,
	// read in its stead (see ForLab); directions are flipped to read as
	// the named one's.
	Reversed bool
	// Description goes into the pcapng interface block.
	Description string
}

// Packet is one captured packet.
type Packet struct {
	Iface    int // index of its interface in the capture (the pcapng interface id)
	Time     time.Time
	Data     []byte // at most the snap length
	Length   int    // length on the wire
	Outgoing bool   // sent by the interface (PACKET_OUTGOING), not received
}

// Handle is an open packet socket on one interface.
type Handle struct {
	Interface
	Filter string // the filter expression attached, if any
	f      *os.File
	buf    []byte
	oob    []byte
	// tagged runs the filter on the frames whose 802.1Q tag the kernel
	// took out (see Open); nil without a filter.
	tagged *bpf.VM

	dropOnce sync.Once
	dropped  int
}

// Open opens a packet socket on interface name of namespace ns, with filter
// (tcpdump's expression syntax, "" for every packet) attached before any
// packet is let in. snapLen 0 means DefaultSnapLen.
//
// The socket is made with protocol 0, which receives nothing, and bound to
// the interface with protocol 0 too; the filter is attached; only then does
// a second bind with ETH_P_ALL let packets in. So no packet of another
// interface, and none the filter rejects, is ever queued on it.
//
// VLAN tags: the kernel takes a frame's 802.1Q tag out of the data into the
// packet's metadata (VLAN offload, on veths too), and gives it back to a
// packet socket only as PACKET_AUXDATA. Read puts it back where it was, so
// text, pcapng and pcap show the frame as it was on the wire (tcpdump does
// the same). A filter compiled for frames (tcpdump's `vlan 30` reads the
// tag from the frame) would see the tagless data in the kernel, so on an
// Ethernet interface the kernel's program lets every tagged frame through
// and Read runs the filter on it with the tag back in place.
func Open(ns, name, filter string, snapLen int) (*Handle, error) {
	return open(ns, name, filter, snapLen, Compile)
}

// open is Open with the filter compiler given: OpenAll compiles a filter
// once per link type, not once per interface (each is a tcpdump run).
func open(ns, name, filter string, snapLen int, compile func(string, LinkType, int) ([]bpf.RawInstruction, error)) (*Handle, error) {
	if snapLen <= 0 {
		snapLen = DefaultSnapLen
	}
	h := &Handle{Interface: Interface{NS: ns, Name: name, Label: ns + "/" + name}, Filter: filter}
	hn, err := namespace.Open(ns)
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", h.Label, err)
	}
	defer hn.Close()
	var fd int
	var hatype uint16
	err = namespace.Do(hn, func() error {
		// The namespace decides which interface the name means, so look it
		// up here too.
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		h.Index = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("getsockname: %w", err)
		}
		if ll, ok := sa.(*unix.SockaddrLinklayer); ok {
			hatype = ll.Hatype
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s: %w", h.Label, err)
	}
	fail := func(err error) (*Handle, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("capture on %s: %w", h.Label, err)
	}
	h.LinkType, err = linkType(hatype)
	if err != nil {
		return fail(err)
	}
	if filter != "" {
		prog, err := compile(filter, h.LinkType, snapLen)
		if err != nil {
			return fail(err)
		}
		kernel := prog
		if h.LinkType == LinkTypeEthernet {
			insts, ok := bpf.Disassemble(prog)
			vm, err := bpf.NewVM(insts)
			if !ok || err != nil {
				return fail(fmt.Errorf("filter %q: the program tcpdump compiled does not run here: %v", filter, err))
			}
			h.tagged = vm
			kernel = taggedPass(prog, snapLen)
		}
		if err := attach(fd, kernel); err != nil {
			return fail(err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail(fmt.Errorf("PACKET_AUXDATA: %w", err))
	}
	// Kernel timestamps: when the packet arrived, not when we read it.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail(fmt.Errorf("SO_TIMESTAMPNS: %w", err))
	}
	// A bigger receive buffer rides out a burst while the writer is busy.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	// Binding needs no namespace switch: the socket is bound to its own.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: h.Index}); err != nil {
		return fail(fmt.Errorf("bind packet socket: %w", err))
	}
	h.f = os.NewFile(uintptr(fd), "packet:"+h.Label)
	h.buf = make([]byte, snapLen)
	h.oob = make([]byte, unix.CmsgSpace(16)+unix.CmsgSpace(sizeofAuxdata))
	return h, nil
}

// taggedPass prefixes a filter with "a frame whose VLAN tag the kernel took
// out passes": the kernel runs it on data without the tag, which the filter
// (compiled for frames as they were on the wire) would misread; Read runs
// the filter on those with the tag back in place. Classic BPF jumps are
// relative, so the program itself is unchanged.
func taggedPass(prog []bpf.RawInstruction, snapLen int) []bpf.RawInstruction {
	head, _ := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtVLANTagPresent},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1},
		bpf.RetConstant{Val: uint32(snapLen)},
	})
	return append(head, prog...)
}

// linkType maps the interface's ARPHRD type to the pcap link type of what
// the packet socket returns.
func linkType(hatype uint16) (LinkType, error) {
	switch hatype {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return LinkTypeEthernet, nil
	case unix.ARPHRD_NONE:
		// A TUN without IFF_TUN's packet-info header: bare IPv4/IPv6.
		return LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("link type ARPHRD %d not supported (only Ethernet, loopback and TUN)", hatype)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ErrClosed is what Read returns after Close.
var ErrClosed = errors.New("capture closed")

// Read waits for the next packet. It returns ErrClosed once the handle is
// closed, also when Close comes while Read waits.
func (h *Handle) Read() (Packet, error) {
	for {
		p, tagged, err := h.read()
		if err != nil {
			return Packet{}, err
		}
		if tagged && h.tagged != nil {
			if n, err := h.tagged.Run(p.Data); err != nil || n == 0 {
				continue // the filter rejects the frame as it was on the wire
			}
		}
		return p, nil
	}
}

// read reads one packet, its 802.1Q tag put back when the kernel took it
// out (tagged).
func (h *Handle) read() (p Packet, tagged bool, err error) {
	rc, err := h.f.SyscallConn()
	if err != nil {
		return Packet{}, false, ErrClosed
	}
	var n, oobn int
	var from unix.Sockaddr
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		// MSG_TRUNC: n is the packet's full length even when the buffer
		// (the snap length) is shorter.
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), h.buf, h.oob, unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return Packet{}, false, ErrClosed
		}
		return Packet{}, false, fmt.Errorf("read %s: %w", h.Label, err)
	}
	if rerr != nil {
		return Packet{}, false, fmt.Errorf("read %s: %w", h.Label, rerr)
	}
	p = Packet{Length: n, Time: timestamp(h.oob[:oobn])}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		p.Outgoing = (ll.Pkttype == unix.PACKET_OUTGOING) != h.Reversed
	}
	data := h.buf[:min(n, len(h.buf))]
	if tpid, tci, ok := vlanTag(h.oob[:oobn]); ok && h.LinkType == LinkTypeEthernet && len(data) >= 12 {
		// Back where it was: after the two MAC addresses.
		p.Data = make([]byte, 0, min(len(data)+4, len(h.buf)))
		p.Data = append(p.Data, data[:12]...)
		p.Data = binary.BigEndian.AppendUint16(p.Data, tpid)
		p.Data = binary.BigEndian.AppendUint16(p.Data, tci)
		p.Data = append(p.Data, data[12:min(len(data), len(h.buf)-4)]...)
		p.Length += 4
		return p, true, nil
	}
	p.Data = append([]byte(nil), data...)
	return p, false, nil
}

// sizeofAuxdata is the size of the kernel's struct tpacket_auxdata
// (unix.TpacketAuxdata).
const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// vlanTag reads the 802.1Q tag the kernel took out of the frame from the
// PACKET_AUXDATA control message: its TPID (0x8100 unless the kernel says)
// and TCI.
func vlanTag(oob []byte) (tpid, tci uint16, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < sizeofAuxdata {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:4])
		tci = binary.NativeEndian.Uint16(m.Data[16:18])
		tpid = binary.NativeEndian.Uint16(m.Data[18:20])
		if status&unix.TP_STATUS_VLAN_VALID == 0 && tci == 0 {
			return 0, 0, false
		}
		if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
			tpid = 0x8100
		}
		return tpid, tci, true
	}
	return 0, 0, false
}

// timestamp reads SCM_TIMESTAMPNS from the control messages, or says now.
func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// Close closes the socket; a Read waiting on it returns ErrClosed. It
// reads the kernel's drop count first (see Dropped).
func (h *Handle) Close() error {
	h.dropOnce.Do(func() {
		rc, err := h.f.SyscallConn()
		if err != nil {
			return
		}
		rc.Control(func(fd uintptr) {
			// PACKET_STATISTICS counts since the last read of it: this is
			// the only read.
			if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
				h.dropped = int(st.Drops)
			}
		})
	})
	return h.f.Close()
}

// Dropped is how many packets the kernel dropped because the socket's
// buffer was full (tcpdump's "dropped by kernel"); known after Close (Run
// closes its handles before it returns).
func (h *Handle) Dropped() int { return h.dropped }

// OpenAll opens every interface with the same filter, compiled once per link
// type; on an error it closes those it opened.
func OpenAll(ifaces []Interface, filter string, snapLen int) ([]*Handle, error) {
	progs := map[LinkType][]bpf.RawInstruction{}
	compile := func(filter string, lt LinkType, snapLen int) ([]bpf.RawInstruction, error) {
		if p, ok := progs[lt]; ok {
			return p, nil
		}
		p, err := Compile(filter, lt, snapLen)
		if err == nil {
			progs[lt] = p
		}
		return p, err
	}
	var hs []*Handle
	for _, i := range ifaces {
		h, err := open(i.NS, i.Name, filter, snapLen, compile)
		if err != nil {
			CloseAll(hs)
			return nil, err
		}
		if i.Label != "" {
			h.Label = i.Label
		}
		h.Reversed, h.Description = i.Reversed, i.Description
		hs = append(hs, h)
	}
	return hs, nil
}

// CloseAll closes the handles.
func CloseAll(hs []*Handle) {
	for _, h := range hs {
		h.Close()
	}
}

// Interfaces returns the interfaces of the handles, in order: packet Iface
// numbers index it.
func Interfaces(hs []*Handle) []Interface {
	out := make([]Interface, len(hs))
	for i, h := range hs {
		out[i] = h.Interface
	}
	return out
}

// Run reads every handle and hands each packet to fn, one at a time, until
// ctx ends, count packets (0: no limit) were handed over, fn fails or a read
// fails. It closes the handles before it returns, so nothing is read after
// it. A cancelled ctx or a reached count is a clean end (nil).
func Run(ctx context.Context, hs []*Handle, count int, fn func(Packet) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pkts := make(chan Packet, 256)
	errc := make(chan error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := h.Read()
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errc <- err
					}
					return
				}
				p.Iface = i
				select {
				case pkts <- p:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	stop := func() {
		CloseAll(hs)
		cancel()
		wg.Wait()
	}
	n := 0
	for {
		select {
		case <-ctx.Done():
			// What the readers had already queued was captured before the
			// end: hand it over too, so a test that stops sees it.
			stop()
			for {
				select {
				case p := <-pkts:
					if err := fn(p); err != nil {
						return err
					}
					n++
					if count > 0 && n >= count {
						return nil
					}
				default:
					return nil
				}
			}
		case err := <-errc:
			stop()
			return err
		case p := <-pkts:
			if err := fn(p); err != nil {
				stop()
				return err
			}
			n++
			if count > 0 && n >= count {
				stop()
				return nil
			}
		}
	}
}
