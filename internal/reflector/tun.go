package reflector

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// OpenQueues attaches queues file descriptors to the existing TUN device
// ifname in namespace nsName and returns them as Queues (blocking
// descriptors read and written directly; see Queue). The caller closes them;
// the device persists.
//
// The attach (tundev.Attach) runs on a thread inside the namespace:
// TUNSETIFF looks the name up in the opener's namespace and, if it is not
// there, silently CREATES a new device there. tundev checks the device's
// existence and kind first, in the same namespace, so attaching never
// creates anything of ours by mistake.
//
// The queues are multi-queue if the device was created so (the kernel
// refuses a mismatch; a single-queue device takes only one queue). With
// vnetHdr they carry a virtio_net_hdr and the device's offloads are set to
// checksum + TSO4/6 + USO4/6 (USO only where the kernel has it), so the
// kernel hands over 64 KiB GSO super-packets, each after a 10-byte
// virtio_net_hdr (the Queues' HeaderLen, which Run skips); without it
// offloads are cleared, so no GSO packet or partial checksum can reach a
// reader that has no header to learn about it.
//
// Equivalent to: nothing in iproute2; it is what `ip tuntap` does internally
// (open /dev/net/tun, ioctl TUNSETIFF) on an existing device.
func OpenQueues(nsName, ifname string, queues int, vnetHdr bool) ([]*Queue, error) {
	if err := tundev.CheckName(ifname); err != nil {
		return nil, fmt.Errorf("ns %s: open tun: %w", nsName, err)
	}
	if queues < 1 {
		return nil, fmt.Errorf("ns %s: open tun %s: queues %d < 1", nsName, ifname, queues)
	}
	ns, err := namespace.Open(nsName)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	framing := tundev.WithoutVnetHdr()
	if vnetHdr {
		framing = tundev.WithVnetHdr(tundev.OffloadGSO)
	}
	var tqs []tundev.Queue
	err = namespace.Do(ns, func() error {
		var err error
		tqs, err = tundev.Attach(ifname, tundev.TUN, tundev.Queues(queues), framing)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ns %s: %w", nsName, err)
	}
	qs := make([]*Queue, len(tqs))
	for i, q := range tqs {
		qs[i] = newQueue(q.Fd, q.String(), q.HeaderLen())
	}
	return qs, nil
}
