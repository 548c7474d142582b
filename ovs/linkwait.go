package ovs

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval bounds each sleep of waitInterface: what it sleeps when the
// kernel's notifications cannot be had, and a check now and then when they
// can (a notification lost to a full socket buffer, a socket in another
// namespace than /sys shows).
const pollInterval = 10 * time.Millisecond

// waitInterface waits, bounded by d, until the host's interface name is
// present (or gone). It sleeps until the kernel announces a change of links
// (RTNLGRP_LINK) and looks again then, rather than polling: ovs-vswitchd
// makes and removes a bridge's device at its own pace, and a poll every
// 10 ms came up to 10 ms late (5 ms on average, in a down of 0.1 s). It
// subscribes before the first look, so a change between the two is not
// missed.
func waitInterface(name string, present bool, d time.Duration) error {
	deadline := time.Now().Add(d)
	w := newLinkWatch()
	defer w.close()
	for hostInterfaceExists(name) != present {
		left := time.Until(deadline)
		if left <= 0 {
			if present {
				return fmt.Errorf("interface %s did not appear within %s", name, d)
			}
			return fmt.Errorf("interface %s still present after %s", name, d)
		}
		w.wait(min(left, pollInterval))
	}
	return nil
}

// linkWatch is a netlink socket subscribed to the kernel's link
// notifications in the calling thread's namespace (the host's: the client
// never runs on a thread moved into a lab's), or nothing, when it cannot be
// opened, and then wait only sleeps.
type linkWatch struct {
	fd  int
	buf []byte
}

func newLinkWatch() *linkWatch {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return &linkWatch{fd: -1}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		unix.Close(fd)
		return &linkWatch{fd: -1}
	}
	return &linkWatch{fd: fd, buf: make([]byte, 64<<10)}
}

// wait returns once the kernel has announced a change of links (notified),
// or after at most d. It reads every notification waiting: the caller looks
// at /sys once per wake-up, not once per message (a lab's down announces
// hundreds).
func (w *linkWatch) wait(d time.Duration) (notified bool) {
	if w.fd < 0 {
		time.Sleep(d)
		return false
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	// A signal (the Go runtime's preemption) ends the poll early: the
	// caller looks again and comes back.
	if n, err := unix.Poll(fds, int(max(d.Milliseconds(), 1))); n <= 0 || err != nil {
		return false
	}
	// At most a few hundred reads: on a machine whose links keep changing
	// (another lab coming up), the caller must still get to look.
	for range 256 {
		_, _, err := unix.Recvfrom(w.fd, w.buf, unix.MSG_DONTWAIT)
		// ENOBUFS: notifications were lost, which only means a change.
		if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) {
			break // EAGAIN: all read
		}
	}
	return true
}

func (w *linkWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
	}
}
