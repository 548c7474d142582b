package ovs

import (
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/openflow"
)

// tutorialFlows are the flows of Open vSwitch's "Advanced Features" tutorial
// (Documentation/tutorials/ovs-advanced.rst), as it prints them: a VLAN-aware
// MAC-learning switch. Several only OpenFlow 1.0 with Nicira extensions
// carries (strip_vlan and mod_vlan_vid with no VLAN match).
var tutorialFlows = []string{
	"table=0, dl_src=01:00:00:00:00:00/01:00:00:00:00:00, actions=drop",
	"table=0, dl_dst=01:80:c2:00:00:00/ff:ff:ff:ff:ff:f0, actions=drop",
	"table=0, priority=0, actions=resubmit(,1)",
	"table=1, priority=0, actions=drop",
	"table=1, priority=99, in_port=1, actions=resubmit(,2)",
	"table=1, priority=99, in_port=2, vlan_tci=0, actions=mod_vlan_vid:20, resubmit(,2)",
	"table=1, priority=99, in_port=3, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)",
	"table=1, priority=99, in_port=4, vlan_tci=0, actions=mod_vlan_vid:30, resubmit(,2)",
	"table=2 actions=learn(table=10, NXM_OF_VLAN_TCI[0..11], NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[], load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]), resubmit(,3)",
	"table=3 priority=50 actions=resubmit(,10), resubmit(,4)",
	"table=3 priority=99 dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,4)",
	"table=4 reg0=1 actions=1",
	"table=4 reg0=2 actions=strip_vlan,2",
	"table=4 reg0=3 actions=strip_vlan,3",
	"table=4 reg0=4 actions=strip_vlan,4",
	"table=4 reg0=0 priority=99 dl_vlan=20 actions=1,strip_vlan,2",
	"table=4 reg0=0 priority=99 dl_vlan=30 actions=1,strip_vlan,3,4",
	"table=4 reg0=0 priority=50            actions=1",
}

// Flows converge by meaning: the tutorial's verbatim flows, which Open
// vSwitch stores and dumps in other words (vlan_tci=0x0000, output:2), are
// in sync once installed; an edit replaces exactly what changed, one flow at
// a time as OpenFlow 1.0 needs, keeping what learn() made; a set that fits
// OpenFlow 1.4 goes in one bundle, and switching between the two kinds works
// both ways.
func TestFlowsByMeaningE2E(t *testing.T) {
	c := privateClient(t)
	br, lab := "nlt"+randHex(t, 2)+"m", "nltmeaning"
	if err := c.EnsureBridge(BridgeSpec{Name: br, Lab: lab, Datapath: DatapathNetdev, FailMode: FailModeSecure}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteBridge(br, lab) })
	const cookie = 0x6e6c00000000abcd

	set, err := NormalizeFlows(cookie, tutorialFlows)
	if err != nil || set.Bundle {
		t.Fatalf("NormalizeFlows(tutorial) = bundle %v, %v; want no bundle", set.Bundle, err)
	}
	ensure := func(flows []string, want bool) {
		t.Helper()
		changed, err := c.EnsureFlows(br, cookie, flows)
		if err != nil || changed != want {
			t.Fatalf("EnsureFlows = %v, %v; want %v", changed, err, want)
		}
		if d, _, err := c.StaticFlowsDiffer(br, cookie, flows); err != nil || d {
			t.Fatalf("after EnsureFlows, StaticFlowsDiffer = %v, %v", d, err)
		}
	}
	ensure(tutorialFlows, true)
	ensure(tutorialFlows, false)
	lab0 := labFlows(t, c, br, cookie)
	if len(lab0) != len(tutorialFlows) {
		t.Fatalf("%d flows of the lab, want %d", len(lab0), len(tutorialFlows))
	}

	// learn() makes an entry (cookie 0: the tutorial's learn sets none).
	if _, err := c.appctl("ofproto/trace", br, "in_port=1,vlan_tci=20,dl_src=50:00:00:00:00:01", "-generate"); err != nil {
		t.Fatal(err)
	}
	learned := func() int {
		flows, err := c.DumpFlows(br)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range flows {
			if f.Table == 10 && f.Cookie == 0 && strings.Contains(f.Match, "dl_dst=50:00:00:00:00:01") {
				n++
			}
		}
		return n
	}
	if learned() != 1 {
		t.Fatalf("no learned entry in table 10")
	}

	// An edited flow and a dropped one: exactly those change.
	edited := append([]string{}, tutorialFlows[:len(tutorialFlows)-1]...)
	edited[14] = "table=4 reg0=4 actions=output:4"
	ensure(edited, true)
	got := labFlows(t, c, br, cookie)
	if len(got) != len(tutorialFlows)-1 {
		t.Errorf("%d flows after the edit, want %d", len(got), len(tutorialFlows)-1)
	}
	var reg4 string
	for _, f := range got {
		if f.Table == 4 && f.Match == "reg0=0x4" {
			reg4 = f.Actions
		}
		if f.Table == 4 && f.Priority == 50 && f.Match == "reg0=0" {
			t.Errorf("dropped flow still there: %+v", f)
		}
	}
	if reg4 != "output:4" {
		t.Errorf("edited flow's actions %q, want output:4", reg4)
	}
	if learned() != 1 {
		t.Errorf("the learned entry did not survive the edit")
	}

	// To a set that fits OpenFlow 1.4 (a bundle) and back.
	ls := openflow.LearningSwitch(openflow.LearningSwitchConfig{Ports: []int{1, 2}, LearnCookie: cookie + 1})
	if s, err := NormalizeFlows(cookie, ls); err != nil || !s.Bundle {
		t.Fatalf("NormalizeFlows(learning switch) = bundle %v, %v; want a bundle", s.Bundle, err)
	}
	ensure(ls, true)
	ensure(ls, false)
	if n := len(labFlows(t, c, br, cookie)); n != len(ls) {
		t.Errorf("%d flows of the lab after the bundle, want %d", n, len(ls))
	}
	ensure(tutorialFlows, true)
	ensure(tutorialFlows, false)
	if learned() != 1 {
		t.Errorf("the learned entry did not survive")
	}
}

// labFlows dumps the bridge's flows carrying cookie.
func labFlows(t *testing.T, c *Client, br string, cookie uint64) []Flow {
	t.Helper()
	flows, err := c.DumpFlows(br)
	if err != nil {
		t.Fatal(err)
	}
	var out []Flow
	for _, f := range flows {
		if f.Cookie == cookie {
			out = append(out, f)
		}
	}
	return out
}
