package kernel

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// groupBase is the top half of the interface groups DeleteLinks picks
// ("NL"); the bottom half is random.
const groupBase = 0x4e4c0000

// DeleteLinks deletes the named links (both ends, for a veth) in one kernel
// operation. Deleting links one by one waits for an RCU grace period each
// (measured: 5.3 s for 250 veths); the kernel's group deletion
// unregisters them all at once and waits once. Each link is put in an
// interface group no link of the namespace has, then the group is deleted.
// Equivalent to: `ip link set NAME group G` for each, `ip link del group G`.
//
// Names that do not exist are skipped. A link of someone else that joined
// the group meanwhile (it picked the same random group) makes the links go
// one by one instead: the group is read back after it is set. What is left
// is the gap between that read and the deletion, microseconds, for another
// program that picked the same one of 65536 groups at that moment.
func (n *NS) DeleteLinks(names []string) error {
	return n.deleteLinks(names, func() uint32 { return uint32(groupBase | rand.N(1<<16)) })
}

// deleteLinks is DeleteLinks with the group picker given (tests pick).
func (n *NS) deleteLinks(names []string, pick func() uint32) error {
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	links, err := RetryDump(n.h.LinkList)
	if err != nil {
		return fmt.Errorf("ns %s: list links: %w", n.name, err)
	}
	used := map[uint32]bool{}
	var ours []netlink.Link
	for _, l := range links {
		used[l.Attrs().Group] = true
		if want[l.Attrs().Name] {
			ours = append(ours, l)
		}
	}
	if len(ours) < 2 {
		return n.deleteEach(ours)
	}
	group := pick()
	for used[group] {
		group = pick()
	}
	for _, l := range ours {
		if err := n.h.LinkSetGroup(l, int(group)); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("ns %s: set group of %s: %w", n.name, l.Attrs().Name, err)
		}
	}
	if links, err = RetryDump(n.h.LinkList); err != nil {
		return fmt.Errorf("ns %s: list links: %w", n.name, err)
	}
	for _, l := range links {
		if l.Attrs().Group == group && !want[l.Attrs().Name] {
			return n.deleteEach(ours)
		}
	}
	err = n.deleteGroup(group)
	switch {
	case err == nil, errors.Is(err, unix.ENODEV): // ENODEV: none left to delete
		return nil
	case errors.Is(err, unix.EOPNOTSUPP): // a kind the kernel cannot delete by group
		return n.deleteEach(ours)
	}
	return fmt.Errorf("ns %s: delete links %v (group %#x): %w", n.name, names, group, err)
}

func (n *NS) deleteEach(links []netlink.Link) error {
	var errs []error
	for _, l := range links {
		errs = append(errs, n.DeleteLink(l.Attrs().Name))
	}
	return errors.Join(errs...)
}

// deleteGroup sends RTM_DELLINK with no index and IFLA_GROUP, which
// netlink.Handle has no call for, on a socket made in the namespace.
func (n *NS) deleteGroup(group uint32) error {
	var sock *nl.NetlinkSocket
	err := namespace.Do(n.ns, func() error {
		var err error
		// With no namespace handles it makes the socket where the
		// thread is, without switching (namespace.Do did that).
		sock, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return err
	}
	defer sock.Close()
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := sock.SetSendTimeout(&tv); err != nil {
		return err
	}
	if err := sock.SetReceiveTimeout(&tv); err != nil {
		return err
	}
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{
			Len:   uint32(unix.SizeofNlMsghdr),
			Type:  unix.RTM_DELLINK,
			Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK,
		},
		Sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}},
	}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}
