package observe

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
	"github.com/vishvananda/netns"
)

// ProbeImpair finds out which impairments the kernel can apply by making each
// kind in a scratch namespace (on its lo) that vanishes afterwards: a tbf
// and a netem (kernel.ProbeQdiscs), an nftables netdev egress chain.
// Nothing is assumed from the kernel's version or config (a kernel without
// modules has no /proc/modules to read, and a module may load on demand);
// nothing the machine has is touched.
//
// Equivalent to: `unshare -n sh -c 'tc qdisc add dev lo root netem delay
// 1ms'` and so on.
func ProbeImpair() (*state.ImpairSupport, error) {
	sup := &state.ImpairSupport{Why: map[string]string{}}
	err := namespace.Scratch(func(nsh netns.NsHandle) error {
		if err := kernel.ProbeQdiscs(nsh, sup); err != nil {
			return err
		}
		err := nft.ProbeLoss(nsh)
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

// ProbeVLAN finds out what the kernel offers VLANs (kernel.ProbeVLAN) in a
// scratch namespace that vanishes afterwards: a bridge with VLAN filtering,
// an 802.1Q interface. Nothing the machine has is touched.
func ProbeVLAN() (*state.VLANSupport, error) {
	sup := &state.VLANSupport{Why: map[string]string{}}
	if err := namespace.Scratch(func(nsh netns.NsHandle) error { return kernel.ProbeVLAN(nsh, sup) }); err != nil {
		return nil, fmt.Errorf("probe VLANs: %w", err)
	}
	return sup, nil
}

// wantsKernelVLAN says whether the lab asks the kernel for VLANs: a Linux
// bridge with vlan-filtering, or VLAN interfaces.
func wantsKernelVLAN(lab *topology.Lab) bool {
	for _, b := range lab.Bridges {
		if b.VLANFiltering {
			return true
		}
	}
	return len(lab.VLANInterfaces()) > 0
}
