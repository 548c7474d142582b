package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureCore proves, with the build's own view of the imports, that the
// file format and the planner cannot touch the machine: no netlink, netns,
// go-openvswitch, os/exec, syscall or x/sys/unix anywhere below them.
func TestPureCore(t *testing.T) {
	forbidden := []string{
		"github.com/vishvananda/netlink",
		"github.com/vishvananda/netns",
		"github.com/digitalocean/go-openvswitch",
		"github.com/google/nftables",
		"golang.org/x/sys/unix",
		"os/exec",
		"github.com/netlab-dev/netlab/internal/kernel",
		"github.com/netlab-dev/netlab/internal/namespace",
		"github.com/netlab-dev/netlab/internal/nft",
		"github.com/netlab-dev/netlab/ovs",
	}
	for _, pkg := range []string{"github.com/netlab-dev/netlab/topology", "github.com/netlab-dev/netlab/internal/plan"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 5 {
			t.Fatalf("go list -deps %s printed too little to be believed: %q", pkg, deps)
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
