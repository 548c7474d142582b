// Package openflow renders the OpenFlow flow sets netlab installs: the
// presets (the learning switch) and the lab's full static set for a bridge.
// It is pure, so the planner can compute and print the flows without
// touching Open vSwitch.
package openflow

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// LearnedLocal is what the learning switch stores in reg0 for a MAC seen on
// the bridge's LOCAL port, whose in_port is 0xfffe (65534): a separate
// table-0 flow learns the constant 0xffff, which is no OpenFlow port number,
// and table 2 maps it to LOCAL.
const LearnedLocal = 0xffff

// LearnTable is the table the learning switch learns MACs into.
const LearnTable = lsTableLearn

// maxOFPort is the highest OpenFlow port number a port can have.
const maxOFPort = 0xfeff

// BridgeFlows returns the static flows netlab installs on a bridge, without
// cookies (the driver adds the lab's): the preset's flows, then the file's.
func BridgeFlows(b *topology.Bridge, learnCookie uint64) []string {
	var out []string
	if b.OpenFlow == topology.PresetLearningSwitch {
		var ports []int
		for _, p := range b.Ports {
			ports = append(ports, p.OFPort)
		}
		for _, x := range b.External {
			ports = append(ports, x.OFPort)
		}
		out = append(out, LearningSwitch(LearningSwitchConfig{Ports: ports, IdleTimeout: b.LearnIdleTimeout, LearnCookie: learnCookie})...)
	}
	for _, f := range b.Flows {
		out = append(out, f.Text)
	}
	return out
}

// Tables of the learning-switch preset.
const (
	lsTableIn    = 0  // drop bad sources, learn the source MAC
	lsTableLook  = 1  // look the destination up (unicast only)
	lsTableOut   = 2  // output by reg0
	lsTableLearn = 10 // learned MACs (their own cookie)
)

// DefaultLearnIdleTimeout is the learned entries' idle timeout in seconds
// when LearningSwitchConfig.IdleTimeout is 0.
const DefaultLearnIdleTimeout = 300

// LearningSwitchConfig parameterises the learning-switch preset.
type LearningSwitchConfig struct {
	// Ports are the OpenFlow port numbers of the bridge's ports (not LOCAL).
	// Numbers outside 1..0xfeff are ignored; order and duplicates don't
	// matter, the flows are rendered sorted.
	Ports []int
	// IdleTimeout in seconds of learned entries; 0 means 300.
	IdleTimeout int
	// LearnCookie is the cookie of the learned entries (table 10). It must
	// differ from the cookie the static flows are installed with, or
	// EnsureFlows would count the learned entries as its own and remove them.
	// 0 leaves learned entries without a cookie.
	LearnCookie uint64
}

// LearningSwitch renders the classic OVS tutorial's MAC-learning switch
// (Documentation/tutorials/ovs-advanced.rst, without VLANs) for a bridge in
// fail_mode=secure, in ovs-ofctl add-flow syntax without cookies (EnsureFlows
// adds the lab's), in a fixed order:
//
//	table 0:  drop multicast source MACs and 802.1D reserved destinations
//	          (01:80:c2:00:00:0x: STP, LLDP, pause — a bridge never forwards
//	          them); learn source MAC -> input port into table 10 (LOCAL as
//	          0xffff), then resubmit(,1)
//	table 1:  multicast/broadcast destinations straight to table 2; unicast
//	          resubmit(,10) (sets reg0 if known) then resubmit(,2)
//	table 2:  reg0=0 (unknown or multicast): flood; reg0=N: output:N;
//	          reg0=0xffff: LOCAL
//
// Flooding is an explicit list of output actions: every port of cfg.Ports in
// order, then LOCAL. OpenFlow drops output to the packet's own input port
// (ofproto/trace says "skipping output to input port"), so the list never
// echoes a frame back. The list rather than the `flood` action: it reaches
// exactly the lab's ports and LOCAL — not a port someone attached by hand —,
// does not depend on ports' no-flood bits, and the rendered text shows the
// flood set. Because the list and the reg0=N flows are generated from the
// port numbers, adding or removing a namespace changes table 2; EnsureFlows
// then swaps the tables in one bundle, keeping what was learned.
func LearningSwitch(cfg LearningSwitchConfig) []string {
	ports := make([]int, 0, len(cfg.Ports))
	for _, p := range cfg.Ports {
		if p >= 1 && p <= maxOFPort {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultLearnIdleTimeout
	}
	idle = min(idle, 0xffff)
	learn := func(load string) string {
		cookie := ""
		if cfg.LearnCookie != 0 {
			cookie = fmt.Sprintf("cookie=%#x,", cfg.LearnCookie)
		}
		return fmt.Sprintf("learn(table=%d,%sidle_timeout=%d,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:%s->NXM_NX_REG0[0..15])",
			lsTableLearn, cookie, idle, load)
	}
	const multicast = "01:00:00:00:00:00/01:00:00:00:00:00"
	flows := []string{
		fmt.Sprintf("table=%d,priority=100,dl_src=%s,actions=drop", lsTableIn, multicast),
		fmt.Sprintf("table=%d,priority=99,dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0,actions=drop", lsTableIn),
		fmt.Sprintf("table=%d,priority=60,in_port=LOCAL,actions=%s,resubmit(,%d)", lsTableIn, learn(fmt.Sprintf("%#x", LearnedLocal)), lsTableLook),
		fmt.Sprintf("table=%d,priority=50,actions=%s,resubmit(,%d)", lsTableIn, learn("NXM_OF_IN_PORT[]"), lsTableLook),
		fmt.Sprintf("table=%d,priority=99,dl_dst=%s,actions=resubmit(,%d)", lsTableLook, multicast, lsTableOut),
		fmt.Sprintf("table=%d,priority=50,actions=resubmit(,%d),resubmit(,%d)", lsTableLook, lsTableLearn, lsTableOut),
	}
	var flood []string
	for _, p := range ports {
		flood = append(flood, "output:"+strconv.Itoa(p))
	}
	flood = append(flood, "LOCAL")
	flows = append(flows, fmt.Sprintf("table=%d,priority=50,reg0=0,actions=%s", lsTableOut, strings.Join(flood, ",")))
	for _, p := range ports {
		flows = append(flows, fmt.Sprintf("table=%d,priority=50,reg0=%d,actions=output:%d", lsTableOut, p, p))
	}
	return append(flows, fmt.Sprintf("table=%d,priority=50,reg0=%#x,actions=LOCAL", lsTableOut, LearnedLocal))
}
