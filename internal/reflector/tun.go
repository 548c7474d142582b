package reflector

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// TUN offload bits for TUNSETOFFLOAD (include/uapi/linux/if_tun.h); x/sys
// does not define them.
const (
	tunFCsum = 0x01 // TUN_F_CSUM: we accept packets with partial checksums
	tunFTSO4 = 0x02 // TUN_F_TSO4
	tunFTSO6 = 0x04 // TUN_F_TSO6
	tunFUSO4 = 0x20 // TUN_F_USO4 (Linux 6.2+)
	tunFUSO6 = 0x40 // TUN_F_USO6 (Linux 6.2+)
)

// errNotTUN describes an existing link that is not a TUN device.
func errNotTUN(l netlink.Link) error {
	if tt, ok := l.(*netlink.Tuntap); ok && tt.Mode == netlink.TUNTAP_MODE_TAP {
		return errors.New("already exists but is a tap, not a tun")
	}
	return fmt.Errorf("already exists but is a %s, not a tun", l.Type())
}

// checkIfname rejects names the kernel would refuse or that TUNSETIFF would
// silently truncate.
func checkIfname(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("invalid interface name %q (1 to %d bytes)", name, unix.IFNAMSIZ-1)
	}
	return nil
}

// OpenQueues attaches queues file descriptors to the existing TUN device
// ifname in namespace nsName and returns them as Queues (blocking
// descriptors read and written directly; see Queue). The caller closes them;
// the device persists.
//
// Everything runs on a thread inside the namespace: TUNSETIFF looks the name
// up in the opener's namespace and, if it is not there, silently CREATES a new
// device there. So the device's existence (and kind) is checked first, in the
// same namespace, and attaching never creates anything of ours by mistake
// (a device vanishing in between is the only window).
//
// Flags: IFF_TUN|IFF_NO_PI, plus IFF_MULTI_QUEUE if the device was created
// multi-queue (the kernel refuses a mismatch; a single-queue device takes only
// one queue), plus IFF_VNET_HDR if vnetHdr. With vnetHdr the device's offloads
// are set to checksum + TSO4/6 + USO4/6 (USO only where the kernel has it), so
// the kernel hands over 64 KiB GSO super-packets, each after a 10-byte
// virtio_net_hdr (the Queues' HeaderLen, which Run skips); without it offloads
// are cleared, so no GSO packet or partial checksum can reach a reader that
// has no header to learn about it.
//
// Equivalent to: nothing in iproute2; it is what `ip tuntap` does internally
// (open /dev/net/tun, ioctl TUNSETIFF) on an existing device.
func OpenQueues(nsName, ifname string, queues int, vnetHdr bool) ([]*Queue, error) {
	if err := checkIfname(ifname); err != nil {
		return nil, fmt.Errorf("ns %s: open tun: %w", nsName, err)
	}
	if queues < 1 {
		return nil, fmt.Errorf("ns %s: open tun %s: queues %d < 1", nsName, ifname, queues)
	}
	ns, err := namespace.Open(nsName)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var qs []*Queue
	err = namespace.Do(ns, func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // this thread's namespace
		if err != nil {
			return err
		}
		link, err := h.LinkByName(ifname)
		h.Close()
		if err != nil {
			return fmt.Errorf("tun %s: %w", ifname, err)
		}
		tt, ok := link.(*netlink.Tuntap)
		if !ok || tt.Mode != netlink.TUNTAP_MODE_TUN {
			return fmt.Errorf("tun %s: %w", ifname, errNotTUN(link))
		}
		flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
			flags |= unix.IFF_MULTI_QUEUE
		} else if queues > 1 {
			return fmt.Errorf("tun %s: %d queues asked but the device is not multi-queue", ifname, queues)
		}
		if vnetHdr {
			flags |= unix.IFF_VNET_HDR
		}
		for i := range queues {
			q, err := attach(ifname, i, flags, i == 0, vnetHdr)
			if err != nil {
				return fmt.Errorf("tun %s: queue %d: %w", ifname, i, err)
			}
			qs = append(qs, q)
		}
		return nil
	})
	if err != nil {
		for _, q := range qs {
			q.Close()
		}
		return nil, fmt.Errorf("ns %s: %w", nsName, err)
	}
	return qs, nil
}

// attach opens /dev/net/tun on the calling thread and attaches it to ifname
// as queue number i, in blocking mode. If setOffload, it also sets the
// device-wide offloads (TUNSETOFFLOAD acts on the device, not the queue).
func attach(ifname string, i int, flags uint16, setOffload, vnetHdr bool) (*Queue, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ioctl TUNSETIFF: %w", err)
	}
	if setOffload {
		if err := setOffloads(fd, vnetHdr); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	hdr := 0
	if vnetHdr {
		hdr = VnetHdrLen
	}
	return newQueue(fd, fmt.Sprintf("tun %s queue %d", ifname, i), hdr), nil
}

// setOffloads enables checksum, TSO and (where available) USO offloads when
// the reader takes virtio_net_hdr, and clears them otherwise.
func setOffloads(fd int, vnetHdr bool) error {
	if !vnetHdr {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return fmt.Errorf("ioctl TUNSETOFFLOAD 0: %w", err)
		}
		return nil
	}
	base := tunFCsum | tunFTSO4 | tunFTSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base|tunFUSO4|tunFUSO6); err == nil {
		return nil
	}
	// Before Linux 6.2 the USO bits are EINVAL.
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base); err != nil {
		return fmt.Errorf("ioctl TUNSETOFFLOAD csum,tso4,tso6: %w", err)
	}
	return nil
}
