package openflow

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// testLearnCookie is the learn cookie of the goldens.
const testLearnCookie = 0x6e6c000000000002

func TestLearningSwitchGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ports []int
	}{
		{"learning-switch-1.flows", []int{1}},
		{"learning-switch-2.flows", []int{2, 1}},
		// Unsorted, with a duplicate and gaps: the rendering sorts.
		{"learning-switch-5.flows", []int{10, 1, 3, 2, 7, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(LearningSwitch(LearningSwitchConfig{Ports: tc.ports, LearnCookie: testLearnCookie}), "\n") + "\n"
			testkit.Golden(t, filepath.Join("testdata", tc.name), []byte(got))
		})
	}
}

func TestLearningSwitchConfig(t *testing.T) {
	flows := LearningSwitch(LearningSwitchConfig{Ports: []int{0, -1, 0xff00, 4}, IdleTimeout: 60})
	all := strings.Join(flows, "\n")
	if strings.Contains(all, "cookie") {
		t.Errorf("LearnCookie 0 rendered a cookie:\n%s", all)
	}
	if !strings.Contains(all, "idle_timeout=60,") || strings.Contains(all, "idle_timeout=300") {
		t.Errorf("IdleTimeout 60 not used:\n%s", all)
	}
	if !slices.Contains(flows, "table=2,priority=50,reg0=0,actions=output:4,LOCAL") {
		t.Errorf("invalid ports not skipped:\n%s", all)
	}
	// Rendering is deterministic and does not modify the input.
	in := []int{3, 1, 2}
	a := LearningSwitch(LearningSwitchConfig{Ports: in})
	b := LearningSwitch(LearningSwitchConfig{Ports: []int{1, 2, 3}})
	if !slices.Equal(a, b) || !slices.Equal(in, []int{3, 1, 2}) {
		t.Errorf("order-dependent or input modified: %v\n%v\n%v", in, a, b)
	}
	// A new port changes table 2 only.
	c := LearningSwitch(LearningSwitchConfig{Ports: []int{1, 2, 3, 4}})
	for i, f := range c {
		if !strings.HasPrefix(f, "table=2,") && (i >= len(a) || f != a[i]) {
			t.Errorf("flow %d outside table 2 changed: %s", i, f)
		}
	}
}

func TestLearnSpecs(t *testing.T) {
	ls := LearningSwitch(LearningSwitchConfig{Ports: []int{1}, LearnCookie: 0x77})
	tutorial := "table=2 actions=learn(table=10, NXM_OF_VLAN_TCI[0..11], NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[], load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]), resubmit(,3)"
	got := LearnSpecs(append(ls, tutorial, "table=5,actions=learn(table=20,priority=7,hard_timeout=9,cookie=0x5,output:NXM_OF_IN_PORT[]),learn(table=21)"))
	want := []LearnSpec{
		{Table: 10, Cookie: 0x77, Priority: DefaultPriority, IdleTimeout: 300},
		{Table: 10, Priority: DefaultPriority},
		{Table: 20, Cookie: 5, Priority: 7, HardTimeout: 9},
		{Table: 21, Priority: DefaultPriority},
	}
	if !slices.Equal(got, want) {
		t.Errorf("LearnSpecs = %+v\nwant %+v", got, want)
	}
}
