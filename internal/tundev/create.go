package tundev

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Spec describes a persistent TUN or TAP device to create.
type Spec struct {
	Kind       Kind
	MultiQueue bool
	VnetHdr    bool
	// Owner and Group may attach without CAP_NET_ADMIN; -1: nobody. They
	// are ids of this process's user namespace, the ones TUNSETOWNER and
	// TUNSETGROUP take. The kernel lets a user attach only when both
	// that are set match.
	Owner, Group int
}

// Create makes the persistent device name in the calling thread's network
// namespace, exclusively: if the name is taken (by a TUN/TAP or any other
// link) it fails with an error wrapping fs.ErrExist, where TUNSETIFF
// without IFF_TUN_EXCL would attach to the existing device and report
// success. The device is down, with a random MAC for a TAP.
//
// Raw ioctls rather than netlink's Tuntap: netlink always sends
// TUNSETOWNER and TUNSETGROUP, and the kernel rejects "nobody" (-1) with
// EINVAL, so an unowned device could not be made.
//
// Equivalent to: `ip tuntap add dev NAME mode tun|tap [user U group G]
// [multi_queue] [vnet_hdr]`.
func Create(name string, s Spec) error {
	if err := create(name, s); err != nil {
		return fmt.Errorf("add %s %s: %w", s.Kind, name, err)
	}
	return nil
}

func create(name string, s Spec) error {
	if s.Kind != TUN && s.Kind != TAP {
		return fmt.Errorf("no kind given (TUN or TAP)")
	}
	if err := CheckName(name); err != nil {
		return err
	}
	flags := s.Kind.flag() | unix.IFF_NO_PI | unix.IFF_TUN_EXCL
	if s.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if s.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	fd, err := open(name, flags)
	if errors.Is(err, unix.EBUSY) {
		// IFF_TUN_EXCL's answer for a name any link already has.
		return fmt.Errorf("%w (the name is taken: %w)", err, fs.ErrExist)
	}
	if err != nil {
		return err
	}
	// Until TUNSETPERSIST the device lives only as long as the descriptor,
	// so a failure below leaves nothing; after it the device stays.
	defer unix.Close(fd)
	if s.Owner >= 0 {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, s.Owner); err != nil {
			return fmt.Errorf("TUNSETOWNER %d: %w", s.Owner, err)
		}
	}
	if s.Group >= 0 {
		if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, s.Group); err != nil {
			return fmt.Errorf("TUNSETGROUP %d: %w", s.Group, err)
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}
