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

// attach opens /dev/net/tun and attaches to the existing TAP device. The
// flags must agree with the device's, so a multi-queue device is attached
// as one; IFF_TUN_EXCL is never set, so nothing is ever created (without
// CAP_NET_ADMIN the kernel would refuse that anyway).
func attach(name string) (int, error) {
	var lastErr error
	for _, flags := range []uint16{unix.IFF_TAP | unix.IFF_NO_PI, unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE} {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("tap %s: open /dev/net/tun: %w", name, err)
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
