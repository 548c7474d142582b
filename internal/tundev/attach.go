package tundev

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Queue is one descriptor of /dev/net/tun attached to a device as one of
// its queues, in blocking mode: each read(2) returns one packet (with a
// virtio_net_hdr in front when VnetHdr), each write(2) sends one. The
// caller owns Fd: it closes it (Close), gives it to an *os.File (File), or
// to a reader of its own that closes it.
type Queue struct {
	Fd      int
	Kind    Kind
	Device  string
	Index   int
	VnetHdr bool
}

// HeaderLen is the size of the header in front of every packet:
// VnetHdrLen for a queue with a virtio_net_hdr, else 0.
func (q Queue) HeaderLen() int {
	if q.VnetHdr {
		return VnetHdrLen
	}
	return 0
}

// String names the queue for errors and logs: "tun refl0 queue 1".
func (q Queue) String() string { return fmt.Sprintf("%s %s queue %d", q.Kind, q.Device, q.Index) }

// Close closes the descriptor; the device stays (it is persistent). A
// read(2) blocked on it is not woken: a reader that must be stopped
// reads through File, or stops itself (as the reflector's Queue does).
func (q Queue) Close() error { return unix.Close(q.Fd) }

// File hands the descriptor to an *os.File in non-blocking mode, read and
// written through Go's poller: Close then wakes a blocked Read, and
// deadlines work. That is what a program that moves frames between queues
// (a userspace link between two TAPs) wants. The File owns the descriptor.
func (q Queue) File() (*os.File, error) {
	if err := unix.SetNonblock(q.Fd, true); err != nil {
		return nil, fmt.Errorf("%s: set non-blocking: %w", q, err)
	}
	return os.NewFile(uintptr(q.Fd), q.String()), nil
}

// Option changes how Attach attaches.
type Option func(*attachOptions)

// framing is the header a queue's packets carry.
type framing int

const (
	asDevice framing = iota // the device's own flags, offloads untouched
	withVnet                // IFF_NO_PI|IFF_VNET_HDR, offloads set
	plain                   // IFF_NO_PI, offloads cleared
)

type attachOptions struct {
	queues   int
	framing  framing
	offloads Offload
}

// Queues attaches n queues (default 1); more than one needs a multi-queue
// device.
func Queues(n int) Option { return func(o *attachOptions) { o.queues = n } }

// WithVnetHdr attaches with IFF_VNET_HDR (and IFF_NO_PI): every packet read
// or written starts with a VnetHdr. The device's offloads are set to
// offloads (what the reader accepts); bits the kernel does not know (USO
// before Linux 6.2) are left out.
func WithVnetHdr(offloads Offload) Option {
	return func(o *attachOptions) { o.framing, o.offloads = withVnet, offloads }
}

// WithoutVnetHdr attaches with IFF_NO_PI alone: every packet is bare. The
// device's offloads are cleared, so no GSO super-packet or partial checksum
// reaches a reader that has no header to learn of it.
func WithoutVnetHdr() Option { return func(o *attachOptions) { o.framing = plain } }

// Attach attaches queues to the existing device name of that kind in the
// calling thread's network namespace, and returns them in order (queue 0
// first). Without WithVnetHdr or WithoutVnetHdr the queues take the
// device's own flags and leave its offloads alone: every attach sets the
// device's IFF_NO_PI and IFF_VNET_HDR to the attacher's, so anything else
// would change the device for whoever attaches next (a VM expecting
// vnet_hdr). The multi-queue setting is
// always the device's: the kernel refuses a mismatch.
//
// Attaching never creates: TUNSETIFF on a missing name would silently make
// a new device there, so the device is looked up first (through a netlink
// socket of the calling thread, so in the same namespace as the open) and
// must exist with the kind asked (else ErrNoDevice, *KindError). Only a
// device vanishing in between is left to chance, and without
// CAP_NET_ADMIN the kernel refuses to create anyway. The TUN/TAP's owner
// and group may attach without any capability.
//
// Equivalent to: nothing in iproute2; it is what a VM or `ip tuntap`
// does internally (open /dev/net/tun, ioctl TUNSETIFF) on an existing
// device.
func Attach(name string, kind Kind, opts ...Option) ([]Queue, error) {
	o := attachOptions{queues: 1}
	for _, fn := range opts {
		fn(&o)
	}
	qs, err := attach(name, kind, o)
	if err != nil {
		return nil, fmt.Errorf("attach %s %s: %w", kind, name, err)
	}
	return qs, nil
}

func attach(name string, kind Kind, o attachOptions) ([]Queue, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if o.queues < 1 {
		return nil, fmt.Errorf("queues %d < 1", o.queues)
	}
	dev, err := lookup(name, kind)
	if err != nil {
		return nil, err
	}
	// The multi-queue settings to try, in order. A kernel that does not
	// describe the device (before Linux 4.15) leaves it to trying: the
	// wrong one is EINVAL.
	var mqs []bool
	switch {
	case dev.known && dev.multiQueue:
		mqs = []bool{true}
	case dev.known && o.queues > 1:
		return nil, fmt.Errorf("%d queues asked: %w", o.queues, ErrNotMultiQueue)
	case dev.known:
		mqs = []bool{false}
	case o.queues > 1:
		mqs = []bool{true}
	default:
		mqs = []bool{false, true}
	}
	flags := kind.flag()
	switch o.framing {
	case asDevice:
		if dev.noPI || !dev.known {
			flags |= unix.IFF_NO_PI
		}
		if dev.vnetHdr {
			flags |= unix.IFF_VNET_HDR
		}
	case withVnet:
		flags |= unix.IFF_NO_PI | unix.IFF_VNET_HDR
	case plain:
		flags |= unix.IFF_NO_PI
	}
	var qs []Queue
	for i := range o.queues {
		fd, mq, err := openQueue(name, flags, mqs)
		if err == nil && i == 0 {
			err = setOffloads(fd, o)
		}
		if err != nil {
			if fd >= 0 {
				unix.Close(fd)
			}
			for _, q := range qs {
				q.Close()
			}
			return nil, fmt.Errorf("queue %d: %w", i, err)
		}
		mqs = []bool{mq}
		qs = append(qs, Queue{Fd: fd, Kind: kind, Device: name, Index: i, VnetHdr: flags&unix.IFF_VNET_HDR != 0})
	}
	return qs, nil
}

// openQueue attaches one descriptor with flags and each multi-queue
// setting of mqs in turn until one is not EINVAL; it returns the setting
// that worked.
func openQueue(name string, flags uint16, mqs []bool) (int, bool, error) {
	var err error
	for _, mq := range mqs {
		f := flags
		if mq {
			f |= unix.IFF_MULTI_QUEUE
		}
		var fd int
		fd, err = open(name, f)
		if err == nil {
			return fd, mq, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			break
		}
	}
	if errors.Is(err, unix.EPERM) {
		err = fmt.Errorf("%w (only the device's owner and group, or CAP_NET_ADMIN, may attach)", err)
	}
	return -1, false, err
}

// setOffloads sets the device's offloads for the framing asked (through
// the first queue: TUNSETOFFLOAD acts on the device, not the queue).
func setOffloads(fd int, o attachOptions) error {
	switch o.framing {
	case plain:
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return fmt.Errorf("TUNSETOFFLOAD 0: %w", err)
		}
	case withVnet:
		err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(o.offloads))
		if errors.Is(err, unix.EINVAL) && o.offloads&(OffloadUSO4|OffloadUSO6) != 0 {
			// Before Linux 6.2 the USO bits are EINVAL.
			err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(o.offloads&^(OffloadUSO4|OffloadUSO6)))
		}
		if err != nil {
			return fmt.Errorf("TUNSETOFFLOAD %#x: %w", uint(o.offloads), err)
		}
	}
	return nil
}

// device is what the kernel says of an existing TUN/TAP.
type device struct {
	// known says the kernel described the device (IFLA_TUN_*, Linux
	// 4.15+); the flags below are false when it did not.
	known                     bool
	noPI, vnetHdr, multiQueue bool
}

// lookupTimeout bounds the netlink request of lookup.
const lookupTimeout = 10 * time.Second

// lookup reads the link name in the calling thread's network namespace and
// checks it is a TUN/TAP of kind want.
//
// Equivalent to: `ip -d link show NAME` ("tun type tap pi off vnet_hdr on
// multi_queue ...").
func lookup(name string, want Kind) (device, error) {
	// A socket of this thread's, not a handle opened elsewhere: only that
	// is sure to look in the namespace where TUNSETIFF will act.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return device{}, fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	if err := h.SetSocketTimeout(lookupTimeout); err != nil {
		return device{}, fmt.Errorf("open netlink: %w", err)
	}
	l, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return device{}, ErrNoDevice
	}
	if err != nil {
		return device{}, err
	}
	tt, ok := l.(*netlink.Tuntap)
	if !ok {
		return device{}, &KindError{Want: want, Got: l.Type()}
	}
	var got Kind
	switch tt.Mode {
	case netlink.TUNTAP_MODE_TUN:
		got = TUN
	case netlink.TUNTAP_MODE_TAP:
		got = TAP
	default:
		return device{}, nil // the kernel does not say
	}
	if got != want {
		return device{}, &KindError{Want: want, Got: got.String()}
	}
	return device{
		known:      true,
		noPI:       tt.Flags&netlink.TUNTAP_NO_PI != 0,
		vnetHdr:    tt.Flags&netlink.TUNTAP_VNET_HDR != 0,
		multiQueue: tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0,
	}, nil
}
