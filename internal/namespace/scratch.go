package namespace

import (
	"fmt"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Scratch runs fn with a handle on a fresh, anonymous network namespace
// that nothing else sees (no name under /run/netns) and that the kernel
// frees when fn returns: for trying what the kernel can do (a qdisc kind,
// an nftables hook) without touching any namespace that matters. The
// namespace's only device is lo, down.
//
// Equivalent to: `unshare -n sh -c '...'`.
func Scratch(fn func(ns netns.NsHandle) error) error {
	var h netns.NsHandle
	err := threads.run(&job{unshare: true, fn: func() error {
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open scratch namespace: %w", err)
		}
		h = netns.NsHandle(fd)
		return nil
	}}).err
	if err != nil {
		return fmt.Errorf("scratch namespace: %w", err)
	}
	// The thread that made it is gone; this handle (and the sockets fn
	// opens) keep the namespace until they are closed.
	defer h.Close()
	return fn(h)
}
