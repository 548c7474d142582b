package kernel

import (
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// The probe finds tbf on every kernel netlab supports, and netem exactly
// where the kernel's config has it.
func TestProbeQdiscs(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, tc")
	sup := &state.ImpairSupport{}
	if err := namespace.Scratch(func(nsh netns.NsHandle) error { return ProbeQdiscs(nsh, sup) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("support: %+v", sup)
	if !sup.TBF {
		t.Errorf("tbf is on every kernel netlab supports: %+v", sup)
	}
	if sup.Netem == (sup.Why["netem"] != "") || sup.TBF == (sup.Why["tbf"] != "") {
		t.Errorf("a qdisc both supported and explained, or neither: %+v", sup)
	}
	if _, err := os.Stat("/proc/config.gz"); err == nil {
		cfg := testkit.Run(t, "sh", "-c", "zcat /proc/config.gz | grep -E '^CONFIG_NET_SCH_NETEM=' || true")
		if want := strings.TrimSpace(cfg) != ""; sup.Netem != want {
			t.Errorf("probe says netem %v, kernel config %q", sup.Netem, cfg)
		}
	}
}
