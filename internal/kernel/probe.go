package kernel

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/state"
)

// ProbeQdiscs finds out which of netlab's qdiscs the kernel can make by
// making each (a tbf, a netem) on lo of the namespace nsh and deleting it
// again, and records the answer in sup (TBF, Netem, and the kernel's
// refusal in Why["tbf"], Why["netem"]). nsh is meant to be a scratch
// namespace (namespace.Scratch) that vanishes afterwards. Nothing is
// assumed from the kernel's version or config: a kernel without modules
// has no /proc/modules to read, and a module may load on demand. The error
// is for the probe itself failing (no netlink socket, no lo), not for a
// missing qdisc.
//
// Equivalent to: `unshare -n sh -c 'tc qdisc add dev lo root netem delay
// 1ms'` and so on.
func ProbeQdiscs(nsh netns.NsHandle, sup *state.ImpairSupport) error {
	h, err := NewHandle(nsh)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	idx := lo.Attrs().Index
	try := func(q netlink.Qdisc) error {
		if err := h.QdiscAdd(q); err != nil {
			return err
		}
		return h.QdiscDel(q)
	}
	if sup.Why == nil {
		sup.Why = map[string]string{}
	}
	err = try(tbfQdisc(idx, &TBF{RateBytes: 125000, Burst: 16384, Limit: 20000}))
	sup.TBF = err == nil
	if err != nil {
		sup.Why["tbf"] = err.Error()
	}
	err = try(netemQdisc(idx, netlink.HANDLE_ROOT, &Netem{Delay: 1000}))
	sup.Netem = err == nil
	if err != nil {
		sup.Why["netem"] = err.Error()
	}
	return nil
}

// CheckPrivileges says whether this process may change network stacks:
// make namespaces (CAP_SYS_ADMIN) and their links (CAP_NET_ADMIN). Without
// them it returns an error wrapping unix.EPERM, before anything is made:
// the first request refused may otherwise come late (a bridge's device
// that an Open vSwitch this process started cannot make).
func CheckPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // unknown: the kernel says so when it comes to it
	}
	var missing []string
	if data[0].Effective&(1<<unix.CAP_NET_ADMIN) == 0 {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if data[0].Effective&(1<<unix.CAP_SYS_ADMIN) == 0 {
		missing = append(missing, "CAP_SYS_ADMIN")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("this process lacks %s: %w", strings.Join(missing, " and "), unix.EPERM)
}
