// Package tap changes a TAP device's MAC address without CAP_NET_ADMIN, the
// way DPDK's vhost-kernel backend does: attach to the TAP through
// /dev/net/tun (which its owner and group may do; tundev.Attach) and send
// SIOCSIFHWADDR on that file descriptor. The kernel checks no capability for
// ioctls on an attached tun fd (the attach was the permission check), where
// `ip link set dev tap0 address ...` needs CAP_NET_ADMIN and fails with
// "Operation not permitted".
package tap

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/tundev"
)

// ifreqHW is struct ifreq with a sockaddr for the hardware address.
type ifreqHW struct {
	Name   [unix.IFNAMSIZ]byte
	Family uint16
	Data   [14]byte
	_      [8]byte
}

// SetMAC sets the MAC of the TAP device name in the caller's network
// namespace. It attaches with the device's own flags (tundev.Attach's
// default), so the device stays as it was for whoever attaches next (a VM
// expecting vnet_hdr), and nothing is ever created. Errors are tundev's
// where the attach fails: tundev.ErrNoDevice, *tundev.KindError,
// *tundev.OpenError (the device file does not open for this user).
//
// Equivalent to (with CAP_NET_ADMIN): `ip link set dev NAME address MAC`.
func SetMAC(name string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("tap %s: %s is not a 6-byte MAC address", name, mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("tap %s: %s is a multicast address", name, mac)
	}
	qs, err := tundev.Attach(name, tundev.TAP)
	if err != nil {
		return err
	}
	defer qs[0].Close()
	r := ifreqHW{Family: unix.ARPHRD_ETHER}
	copy(r.Name[:], name)
	copy(r.Data[:], mac)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(qs[0].Fd), unix.SIOCSIFHWADDR, uintptr(unsafe.Pointer(&r))); errno != 0 {
		return fmt.Errorf("tap %s: set MAC %s: %w", name, mac, errno)
	}
	return nil
}
