// Package tap changes a TAP device's MAC address without CAP_NET_ADMIN, the
// way DPDK's vhost-kernel backend does: attach to the TAP through
// /dev/net/tun (which its owner and group may do) and send SIOCSIFHWADDR on
// that file descriptor. The kernel checks no capability for ioctls on an
// attached tun fd (the attach was the permission check), where
// `ip link set dev tap0 address ...` needs CAP_NET_ADMIN and fails with
// "Operation not permitted".
package tap

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifreqHW is struct ifreq with a sockaddr for the hardware address.
type ifreqHW struct {
	Name   [unix.IFNAMSIZ]byte
	Family uint16
	Data   [14]byte
	_      [8]byte
}

// SetMAC sets the MAC of the TAP device name in the caller's network
// namespace.
//
// Equivalent to (with CAP_NET_ADMIN): `ip link set dev NAME address MAC`.
func SetMAC(name string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("tap %s: %s is not a 6-byte MAC address", name, mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("tap %s: %s is a multicast address", name, mac)
	}
	fd, err := attach(name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	r := ifreqHW{Family: unix.ARPHRD_ETHER}
	copy(r.Name[:], name)
	copy(r.Data[:], mac)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFHWADDR, uintptr(unsafe.Pointer(&r))); errno != 0 {
		return fmt.Errorf("tap %s: set MAC %s: %w", name, mac, errno)
	}
	return nil
}

// attach opens /dev/net/tun and attaches to the existing TAP device with
// the device's own flags (see deviceFlags); IFF_TUN_EXCL is never set, so
// nothing is ever created (without CAP_NET_ADMIN the kernel would refuse
// that anyway).
func attach(name string) (int, error) {
	flags, err := deviceFlags(name)
	if err != nil {
		return -1, err
	}
	candidates := []uint16{flags}
	if flags == 0 {
		// The kernel did not say (before Linux 4.15): the multi-queue
		// setting must agree, so try both.
		candidates = []uint16{unix.IFF_TAP | unix.IFF_NO_PI, unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE}
	}
	var lastErr error
	for _, flags := range candidates {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, &OpenError{TAP: name, Err: err}
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("tap %s: %w", name, err)
		}
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		if err == nil {
			return fd, nil
		}
		unix.Close(fd)
		lastErr = err
		if !errors.Is(err, unix.EINVAL) {
			break
		}
	}
	if errors.Is(lastErr, unix.EPERM) {
		return -1, fmt.Errorf("tap %s: attach: %w (only the TAP's owner and group, or CAP_NET_ADMIN, may attach; a missing TAP cannot be created without CAP_NET_ADMIN)", name, lastErr)
	}
	return -1, fmt.Errorf("tap %s: attach: %w", name, lastErr)
}

// deviceFlags returns the TUNSETIFF flags that attach to the TAP name as it
// is: IFF_TAP, plus IFF_NO_PI, IFF_VNET_HDR and IFF_MULTI_QUEUE as the
// device has them. They matter beyond the multi-queue setting, which the
// kernel checks: attaching the first queue of a device REPLACES the
// device's feature flags with the attacher's, so attaching without
// IFF_VNET_HDR would turn vnet_hdr off on a TAP made with it, for the VM
// that attaches next. It returns 0 if the kernel does not describe the
// device (IFLA_TUN_* attributes, Linux 4.15+), and an error if name is
// missing or not a TAP. It reads the calling thread's namespace.
//
// Equivalent to: `ip -d link show NAME` ("tun type tap pi off vnet_hdr on
// multi_queue ...").
func deviceFlags(name string) (uint16, error) {
	l, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return 0, fmt.Errorf("tap %s: not found in this network namespace", name)
	}
	if err != nil {
		return 0, fmt.Errorf("tap %s: %w", name, err)
	}
	tt, ok := l.(*netlink.Tuntap)
	if !ok || tt.Mode == netlink.TUNTAP_MODE_TUN {
		return 0, fmt.Errorf("tap %s: is a %s, not a tap", name, kindOf(l))
	}
	if tt.Mode != netlink.TUNTAP_MODE_TAP {
		return 0, nil
	}
	flags := uint16(unix.IFF_TAP)
	if tt.Flags&netlink.TUNTAP_NO_PI != 0 {
		flags |= unix.IFF_NO_PI
	}
	if tt.Flags&netlink.TUNTAP_VNET_HDR != 0 {
		flags |= unix.IFF_VNET_HDR
	}
	if tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	return flags, nil
}

// kindOf names a link's kind for errors: "tun" for a TUN device, else its
// netlink type.
func kindOf(l netlink.Link) string {
	if tt, ok := l.(*netlink.Tuntap); ok && tt.Mode == netlink.TUNTAP_MODE_TUN {
		return "tun"
	}
	return l.Type()
}

// OpenError is /dev/net/tun refusing to open: nothing of the TAP's was
// tried yet.
type OpenError struct {
	TAP string
	Err error
}

func (e *OpenError) Error() string { return fmt.Sprintf("tap %s: open /dev/net/tun: %v", e.TAP, e.Err) }

func (e *OpenError) Unwrap() error { return e.Err }
