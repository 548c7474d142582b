package kernel

import (
	"errors"
	"fmt"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// AddTuntap creates a persistent TUN/TAP device in the namespace and marks
// it with alias. The device is created through /dev/net/tun (tundev.Create),
// which acts in the calling thread's namespace (not a netlink handle's), so
// it runs inside namespace.Do; otherwise a device of that name would be
// created silently in the wrong namespace. A name already taken fails with
// an error wrapping fs.ErrExist.
//
// Equivalent to: `ip netns exec NS ip tuntap add dev NAME mode tun|tap
// [user U group G] [multi_queue] [vnet_hdr]; ip -n NS link set NAME alias A`.
func (n *NS) AddTuntap(name, alias string, spec state.Tuntap) error {
	kind := tundev.TUN
	if spec.TAP {
		kind = tundev.TAP
	}
	owner, group, err := insideIDs(spec.Owner, spec.Group)
	if err != nil {
		return fmt.Errorf("ns %s: add %s %s: %w", n.name, kind, name, err)
	}
	err = n.inside(func() error {
		return tundev.Create(name, tundev.Spec{Kind: kind, MultiQueue: spec.MultiQueue, VnetHdr: spec.VnetHdr, Owner: owner, Group: group})
	})
	if err != nil {
		return fmt.Errorf("ns %s: %w", n.name, err)
	}
	if err := n.SetAlias(name, alias); err != nil {
		if derr := n.DeleteLink(name); derr != nil {
			err = errors.Join(err, derr)
		}
		return fmt.Errorf("ns %s: add %s %s: %w", n.name, kind, name, err)
	}
	return nil
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
