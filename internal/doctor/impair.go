package doctor

import (
	"strings"

	"github.com/netlab-dev/netlab/internal/observe"
)

// impairFinding says which impairments (impair: blocks, netlab impair) this
// kernel applies, found by trying each in a scratch namespace, and which
// netlab's userspace link emulator carries instead.
func impairFinding() Finding {
	f := Finding{Check: "kernel impairments"}
	sup, err := observe.ProbeImpair()
	if err != nil {
		f.Level, f.What = Warn, "could not probe: "+err.Error()
		return f
	}
	var kernel, emulated []string
	add := func(ok bool, what, how string) {
		if ok {
			kernel = append(kernel, what+" ("+how+")")
		} else {
			emulated = append(emulated, what)
		}
	}
	add(sup.TBF, "rate", "tbf")
	add(sup.NftEgress, "loss", "nftables egress")
	add(sup.Netem, "delay, jitter, duplicate, corrupt, reorder", "netem")
	f.Level, f.What = OK, "the kernel applies: "+strings.Join(kernel, ", ")
	if len(kernel) == 0 {
		f.What = "the kernel applies none"
	}
	f.What += "; netlab's userspace emulator (netlab emulate, a process between two TAPs) carries a link with "
	if len(emulated) > 0 {
		f.What += strings.Join(emulated, ", ") + " (this kernel lacks them), "
	}
	f.What += "a jitter distribution, Gilbert-Elliott losses, a trace, or emulator: userspace"
	if len(emulated) > 0 {
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
		f.Fix = "nothing needed; for the kernel to carry them (and TAPs and links to other machines to have them): a kernel with " + strings.Join(fix, ", ")
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
