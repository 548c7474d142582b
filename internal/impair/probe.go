package impair

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Probe finds out which impairments the kernel can apply by making each
// kind in a scratch namespace (on its lo) that vanishes afterwards: a tbf,
// a netem, an nftables netdev egress chain. Nothing is assumed from the
// kernel's version or config (a kernel without modules has no
// /proc/modules to read, and a module may load on demand); nothing the
// machine has is touched.
//
// Equivalent to: `unshare -n sh -c 'tc qdisc add dev lo root netem delay
// 1ms'` and so on.
func Probe() (*state.ImpairSupport, error) {
	sup := &state.ImpairSupport{Why: map[string]string{}}
	err := namespace.Scratch(func(nsh netns.NsHandle) error {
		h, err := kernel.NewHandle(nsh)
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
		err = try(&netlink.Tbf{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(state.QdiscHandleTBF, 0)},
			Rate: 125000, Limit: 20000, Buffer: netlink.Xmittime(125000, 16384)})
		sup.TBF = err == nil
		if err != nil {
			sup.Why["tbf"] = err.Error()
		}
		err = try(netemQdisc(idx, netlink.HANDLE_ROOT, &Netem{Delay: 1000}))
		sup.Netem = err == nil
		if err != nil {
			sup.Why["netem"] = err.Error()
		}
		err = nft.ProbeLoss(nsh)
		sup.NftEgress = err == nil
		if err != nil {
			sup.Why["nftables egress"] = err.Error()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("probe impairments: %w", err)
	}
	return sup, nil
}
