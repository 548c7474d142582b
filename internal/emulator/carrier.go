package emulator

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// carrierPoll is how often each TAP's administrative state is read: a cable
// pulled on one end (`ip link set dev X down` on the other, as netlab does
// for a veth) reaches the far end's carrier within it.
const carrierPoll = 50 * time.Millisecond

// ifFlags reads an interface's flags (SIOCGIFFLAGS) through a socket of its
// namespace, opened while the process could still enter the namespace; the
// ioctl needs no capability.
type ifFlags struct {
	fd  int
	dev string
}

// openIfFlags opens the socket in the calling thread's namespace.
func openIfFlags(dev string) (*ifFlags, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	return &ifFlags{fd: fd, dev: dev}, nil
}

// up says whether the interface is administratively up (IFF_UP).
func (f *ifFlags) up() (bool, error) {
	ifr, err := unix.NewIfreq(f.dev)
	if err != nil {
		return false, err
	}
	if err := unix.IoctlIfreq(f.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false, fmt.Errorf("%s: SIOCGIFFLAGS: %w", f.dev, err)
	}
	return ifr.Uint16()&unix.IFF_UP != 0, nil
}

func (f *ifFlags) close() { unix.Close(f.fd) }

// carrier gives each TAP the carrier of a veth: on while the other end is
// administratively up.
type carrier struct {
	a, b   *end
	mu     sync.Mutex
	ca, cb bool
	known  bool
}

func newCarrier(a, b *end) *carrier { return &carrier{a: a, b: b} }

// update reads both ends' states and sets the carriers that change.
func (c *carrier) update() {
	upA, errA := c.a.flags.up()
	upB, errB := c.b.flags.up()
	if errA != nil || errB != nil {
		return // a TAP going away: the pumps see it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known || c.ca != upB {
		if setCarrier(c.a, upB) == nil {
			c.ca = upB
		}
	}
	if !c.known || c.cb != upA {
		if setCarrier(c.b, upA) == nil {
			c.cb = upA
		}
	}
	c.known = true
}

func (c *carrier) state() (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ca, c.cb
}

// setCarrier switches a TAP's carrier (TUNSETCARRIER, Linux 5.0+: any
// process attached to it may).
func setCarrier(e *end, on bool) error {
	rc, err := e.f.SyscallConn()
	if err != nil {
		return err
	}
	v := int32(0)
	if on {
		v = 1
	}
	var errno unix.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNSETCARRIER, uintptr(unsafe.Pointer(&v)))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("%s: TUNSETCARRIER: %w", e.dev, errno)
	}
	return nil
}
