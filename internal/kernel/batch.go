package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"golang.org/x/sys/unix"
)

// groupBase is the top half of the interface groups DeleteLinks picks
// ("NL"); the bottom half is random.
const groupBase = 0x4e4c0000

// labGroupBase is the top half of the interface group a lab's host links
// are made in ("NM", never one DeleteLinks picks); the bottom half is a
// hash of the lab's name (LabGroup).
const labGroupBase = 0x4e4d0000

// LabGroup is the interface group the lab's host links are made in, so that
// down deletes them in one request without first putting each in a group:
// when they all are in it and nothing else is, DeleteLinks deletes the
// group as it is.
func LabGroup(lab string) uint32 {
	h := uint32(2166136261) // FNV-1a
	for _, c := range []byte(lab) {
		h ^= uint32(c)
		h *= 16777619
	}
	return labGroupBase | (h^h>>16)&0xffff
}

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
	defer func() {
		for _, name := range names {
			n.learn(name, 0)
		}
	}()
	return n.raw(func(s *rtnl) error {
		links, err := RetryDump(func() ([]groupedLink, error) { return dumpGroups(s) })
		if err != nil {
			return fmt.Errorf("ns %s: list links: %w", n.name, err)
		}
		used := map[uint32]bool{}
		var ours []groupedLink
		for _, l := range links {
			used[l.group] = true
			if want[l.name] {
				ours = append(ours, l)
			}
		}
		if len(ours) < 2 {
			return n.deleteEach(ours)
		}
		if g := ours[0].group; g&0xffff0000 == labGroupBase && onlyIn(links, g, want) {
			// Made in the lab's group, which holds nothing else: one
			// request, without a message per link first.
			if err := s.deleteGroup(g); err == nil || errors.Is(err, unix.ENODEV) {
				return nil
			}
		}
		group := pick()
		for used[group] {
			group = pick()
		}
		for _, l := range ours {
			if err := s.setLink(l.index, "", linkChange{group: group, setGroup: true}); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("ns %s: set group of %s: %w", n.name, l.name, err)
			}
		}
		if links, err = RetryDump(func() ([]groupedLink, error) { return dumpGroups(s) }); err != nil {
			return fmt.Errorf("ns %s: list links: %w", n.name, err)
		}
		for _, l := range links {
			if l.group == group && !want[l.name] {
				return n.deleteEach(ours)
			}
		}
		err = s.deleteGroup(group)
		switch {
		case err == nil, errors.Is(err, unix.ENODEV): // ENODEV: none left to delete
			return nil
		case errors.Is(err, unix.EOPNOTSUPP): // a kind the kernel cannot delete by group
			return n.deleteEach(ours)
		}
		return fmt.Errorf("ns %s: delete links %v (group %#x): %w", n.name, names, group, err)
	})
}

// onlyIn says whether the links in group g are exactly the wanted ones.
func onlyIn(links []groupedLink, g uint32, want map[string]bool) bool {
	for _, l := range links {
		if want[l.name] != (l.group == g) {
			return false
		}
	}
	return true
}

// groupedLink is a link's name, index, interface group and alias.
type groupedLink struct {
	name  string
	index int32
	group uint32
	alias string
}

func dumpGroups(s *rtnl) ([]groupedLink, error) {
	var out []groupedLink
	err := s.dump(unix.RTM_GETLINK, func(body []byte) error {
		if len(body) < unix.SizeofIfInfomsg {
			return fmt.Errorf("ifinfomsg: %w", ErrTruncated)
		}
		l := groupedLink{index: int32(binary.NativeEndian.Uint32(body[4:8]))}
		err := forEachAttr(body[unix.SizeofIfInfomsg:], func(atype uint16, val []byte) error {
			switch atype {
			case unix.IFLA_IFNAME:
				l.name, _, _ = strings.Cut(string(val), "\x00")
			case unix.IFLA_GROUP:
				if len(val) == 4 {
					l.group = binary.NativeEndian.Uint32(val)
				}
			case unix.IFLA_IFALIAS:
				l.alias, _, _ = strings.Cut(string(val), "\x00")
			}
			return nil
		})
		out = append(out, l)
		return err
	})
	return out, err
}

func (n *NS) deleteEach(links []groupedLink) error {
	var errs []error
	for _, l := range links {
		errs = append(errs, n.DeleteLink(l.name))
	}
	return errors.Join(errs...)
}

// deleteGroup sends RTM_DELLINK with no index and IFLA_GROUP, which
// netlink.Handle has no call for.
// Equivalent to: `ip link del group G`.
func (s *rtnl) deleteGroup(group uint32) error {
	m := newNLMsg(unix.RTM_DELLINK, unix.NLM_F_ACK, ifinfomsg(0, 0, 0))
	m.u32(unix.IFLA_GROUP, group)
	return s.exchange(m, nil)
}

// DeleteLabGroup deletes the lab's interface group (LabGroup) in the
// process's own namespace in one request, when every link in it carries
// the lab's marker, and returns the names of the links it deleted, sorted;
// a group that holds anything else, or nothing, is left to the caller's
// plan (nil). Down runs it while it reads the rest of the lab, on a socket
// of its own (a namespace's socket serves one request at a time, and this
// one waits for the kernel to unregister every link), so that the kernel's
// deletion, most of a down, starts at once. What is left is the gap between
// the read and the deletion, as in DeleteLinks.
// Equivalent to: `ip link del group G` after `ip -d link show group G`.
func DeleteLabGroup(lab string) ([]string, error) {
	s, err := openRTNL()
	if err != nil {
		return nil, err
	}
	defer s.close()
	links, err := RetryDump(func() ([]groupedLink, error) { return dumpGroups(s) })
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	g := LabGroup(lab)
	var names []string
	for _, l := range links {
		if l.group != g {
			continue
		}
		if owner, _, _, ok := state.ParseLinkAlias(l.alias); !ok || owner != lab {
			return nil, nil
		}
		names = append(names, l.name)
	}
	if len(names) == 0 {
		return nil, nil
	}
	if err := s.deleteGroup(g); err != nil && !errors.Is(err, unix.ENODEV) {
		return nil, fmt.Errorf("delete the links of lab %s (group %#x): %w", lab, g, err)
	}
	slices.Sort(names)
	return names, nil
}
