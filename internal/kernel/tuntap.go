package kernel

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// Tuntap describes a persistent TUN or TAP device.
type Tuntap struct {
	TAP        bool // TAP (ethernet frames) rather than TUN (IP packets)
	MultiQueue bool
	VnetHdr    bool
	// Owner and Group may attach without CAP_NET_ADMIN; -1: nobody. The
	// kernel requires both to match for a user to attach.
	Owner, Group int
}

// AddTuntap creates a persistent TUN/TAP device in the namespace and marks
// it with alias. The device is created by opening /dev/net/tun, which acts
// in the calling thread's namespace (not a netlink handle's), so the open
// happens inside namespace.Do; otherwise a device of that name would be
// created silently in the wrong namespace.
//
// Equivalent to: `ip netns exec NS ip tuntap add dev NAME mode tun|tap
// [user U group G] [multi_queue] [vnet_hdr]; ip -n NS link set NAME alias A`.
func (n *NS) AddTuntap(name, alias string, spec Tuntap) error {
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
	if spec.TAP {
		flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_TUN_EXCL
	}
	if spec.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if spec.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	err := namespace.Do(n.ns, func() error {
		// Raw ioctls rather than netlink's Tuntap: netlink always sends
		// TUNSETOWNER and TUNSETGROUP, and the kernel rejects "nobody" (-1)
		// with EINVAL, so an unowned device could not be made.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		if spec.Owner >= 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, spec.Owner); err != nil {
				return fmt.Errorf("TUNSETOWNER %d: %w", spec.Owner, err)
			}
		}
		if spec.Group >= 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, spec.Group); err != nil {
				return fmt.Errorf("TUNSETGROUP %d: %w", spec.Group, err)
			}
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fmt.Errorf("TUNSETPERSIST: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ns %s: add %s %s: %w", n.name, modeName(spec.TAP), name, err)
	}
	if err := n.SetAlias(name, alias); err != nil {
		if derr := n.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add %s %s: %w", n.name, modeName(spec.TAP), name, err)
	}
	return nil
}

func modeName(tap bool) string {
	if tap {
		return "tap"
	}
	return "tun"
}
