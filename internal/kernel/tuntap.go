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
	owner, group, err := insideIDs(spec.Owner, spec.Group)
	if err != nil {
		return fmt.Errorf("ns %s: add %s %s: %w", n.name, modeName(spec.TAP), name, err)
	}
	err = namespace.Do(n.ns, func() error {
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
		if owner >= 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, owner); err != nil {
				return fmt.Errorf("TUNSETOWNER %d: %w", owner, err)
			}
		}
		if group >= 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, group); err != nil {
				return fmt.Errorf("TUNSETGROUP %d: %w", group, err)
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

// insideIDs turns a TUN/TAP's owner and group, the machine's ids, into the
// ids of this process's user namespace, which the kernel's TUNSETOWNER and
// TUNSETGROUP take. In a rootless sandbox only its owner is mapped (to 0).
func insideIDs(owner, group int) (int, int, error) {
	if owner < 0 && group < 0 {
		return owner, group, nil
	}
	uids, err := readIDMap("uid")
	if err != nil {
		return 0, 0, err
	}
	gids, err := readIDMap("gid")
	if err != nil {
		return 0, 0, err
	}
	o, ok := uids.inside(owner)
	if !ok {
		return 0, 0, fmt.Errorf("owner uid %d has no uid in this user namespace (a rootless sandbox maps only the user who made it: give that user's uid)", owner)
	}
	g, ok := gids.inside(group)
	if !ok {
		return 0, 0, fmt.Errorf("group gid %d has no gid in this user namespace (a rootless sandbox maps only the group of the user who made it: give that gid)", group)
	}
	return o, g, nil
}
