// Package tundev is netlab's one user of /dev/net/tun: it creates
// persistent TUN and TAP devices (flags, owner and group, TUNSETPERSIST),
// attaches queues to existing ones (multi-queue, virtio_net_hdr and the
// offloads that go with it), and says whether this process may open the
// device file at all, and how to fix it when not.
//
// Opening /dev/net/tun and TUNSETIFF act in the network namespace of the
// calling thread, not of a netlink socket: a caller that means another
// namespace runs these functions inside namespace.Do, whose goroutine stays
// on its switched thread throughout (a lookup and the open that follows must
// see the same namespace). Only a process all of whose threads are in the
// namespace (netlab tap-mac under `ip netns exec`) may call them from any
// goroutine. The package itself switches no thread.
package tundev

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Path is the device file every TUN/TAP is made and attached through.
const Path = "/dev/net/tun"

// Kind is what a device carries: IP packets (TUN) or Ethernet frames (TAP).
type Kind uint8

const (
	TUN Kind = iota + 1
	TAP
)

// String is the kind as `ip tuntap` writes it: "tun" or "tap".
func (k Kind) String() string {
	switch k {
	case TUN:
		return "tun"
	case TAP:
		return "tap"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// flag is the kind's IFF_* flag for TUNSETIFF.
func (k Kind) flag() uint16 {
	if k == TAP {
		return unix.IFF_TAP
	}
	return unix.IFF_TUN
}

// ErrNoDevice is wrapped by errors about a device that is not there to
// attach to.
var ErrNoDevice = errors.New("not found in this network namespace")

// ErrNotMultiQueue is wrapped by errors about more than one queue asked of
// a single-queue device (the kernel would refuse the second).
var ErrNotMultiQueue = errors.New("the device is not multi-queue")

// KindError is an existing link of another kind than the one asked for:
// a TUN where a TAP was meant, or no TUN/TAP at all.
type KindError struct {
	Want Kind
	Got  string // "tun", "tap", or the link's netlink type ("veth", "device")
}

func (e *KindError) Error() string { return fmt.Sprintf("is a %s, not a %s", e.Got, e.Want) }

// OpenError is /dev/net/tun refusing to open: nothing of the device was
// tried yet. Err is the errno (EACCES for a mode that keeps this user
// out, ENOENT for a missing file); CheckAccess says why and what to do.
type OpenError struct{ Err error }

func (e *OpenError) Error() string { return fmt.Sprintf("open %s: %v", Path, e.Err) }

func (e *OpenError) Unwrap() error { return e.Err }

// CheckName refuses a name TUNSETIFF would not take as it is: empty (the
// kernel would pick one), 16 bytes or more (it would be truncated), or
// with a '%' (the kernel would fill in a number, as in "tun%d").
func CheckName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("invalid interface name %q (1 to %d bytes)", name, unix.IFNAMSIZ-1)
	}
	if strings.Contains(name, "%") {
		return fmt.Errorf("invalid interface name %q (a %% makes the kernel pick the name)", name)
	}
	return nil
}

// open opens /dev/net/tun on the calling thread (so in its network
// namespace) and binds the descriptor to the device name with flags: the
// device is created if it does not exist, unless flags has IFF_TUN_EXCL,
// which makes an existing name fail with EBUSY instead.
func open(name string, flags uint16) (int, error) {
	fd, err := unix.Open(Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &OpenError{Err: err}
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return fd, nil
}
