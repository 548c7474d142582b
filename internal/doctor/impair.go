package doctor

import (
	"strings"

	"github.com/netlab-dev/netlab/internal/observe"
)

// impairFinding says which impairments (impair: blocks, netlab impair) this
// kernel can apply, found by trying each in a scratch namespace.
func impairFinding() Finding {
	f := Finding{Check: "kernel impairments"}
	sup, err := observe.ProbeImpair()
	if err != nil {
		f.Level, f.What = Warn, "could not probe: "+err.Error()
		return f
	}
	var yes, no []string
	add := func(ok bool, what string) {
		if ok {
			yes = append(yes, what)
		} else {
			no = append(no, what)
		}
	}
	add(sup.TBF, "rate (tbf)")
	add(sup.NftEgress, "loss (nftables egress)")
	add(sup.Netem, "delay, jitter, duplicate, corrupt, reorder (netem)")
	f.Level, f.What = OK, "supported: "+strings.Join(yes, ", ")
	if len(no) > 0 {
		f.Level = Warn
		f.What += "; not supported: " + strings.Join(no, ", ") + " (files that use them are refused)"
		var fix []string
		if !sup.Netem {
			fix = append(fix, "CONFIG_NET_SCH_NETEM")
		}
		if !sup.TBF {
			fix = append(fix, "CONFIG_NET_SCH_TBF")
		}
		if !sup.NftEgress {
			fix = append(fix, "CONFIG_NETFILTER_EGRESS (Linux 5.16+)")
		}
		f.Fix = "a kernel with " + strings.Join(fix, ", ")
	}
	return f
}

// vlanFinding says which of the kernel's VLAN features (a Linux bridge's
// vlan-filtering, VLAN interfaces) this kernel has, found by trying each in
// a scratch namespace. Open vSwitch's port VLANs need neither.
func vlanFinding() Finding {
	f := Finding{Check: "kernel VLANs"}
	sup, err := observe.ProbeVLAN()
	if err != nil {
		f.Level, f.What = Warn, "could not probe: "+err.Error()
		return f
	}
	var no, fix []string
	if !sup.BridgeFiltering {
		no, fix = append(no, "Linux bridge VLANs (vlan-filtering)"), append(fix, "CONFIG_BRIDGE_VLAN_FILTERING")
	}
	if !sup.Interfaces {
		no, fix = append(no, "VLAN interfaces (vlans:)"), append(fix, "CONFIG_VLAN_8021Q")
	}
	f.Level, f.What = OK, "Linux bridge VLANs and VLAN interfaces supported"
	if len(no) > 0 {
		f.Level = Warn
		f.What = "not supported: " + strings.Join(no, ", ") + " (files that use them are refused; Open vSwitch ports' vlan: works)"
		f.Fix = "a kernel with " + strings.Join(fix, ", ")
	}
	return f
}
