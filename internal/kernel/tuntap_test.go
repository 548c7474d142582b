package kernel

import (
	"errors"
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// AddTuntap creates exclusively (a second create of the name, or one over
// another device, fails instead of attaching to it), in the namespace of the
// handle, with the flags, owner and group asked for, and marks the device.
func TestAddTuntap(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	must(t, n.AddTuntap("tun7", "netlab:test:x/tun7", state.Tuntap{MultiQueue: true, VnetHdr: true, Owner: -1, Group: -1}))
	must(t, n.AddTuntap("tap7", "netlab:test:x/tap7", state.Tuntap{TAP: true, Owner: 65534, Group: 65534}))
	if err := n.AddTuntap("tun7", "x", state.Tuntap{Owner: -1, Group: -1}); err == nil {
		t.Errorf("a second AddTuntap of tun7 succeeded")
	} else if !errors.Is(err, fs.ErrExist) || !strings.HasPrefix(err.Error(), "ns "+n.Name()+": add tun tun7: ") {
		t.Errorf("a second AddTuntap of tun7: %v, want fs.ErrExist", err)
	}
	if err := n.AddTuntap("lo", "x", state.Tuntap{Owner: -1, Group: -1}); err == nil {
		t.Errorf("AddTuntap over lo succeeded")
	} else if !errors.Is(err, fs.ErrExist) {
		t.Errorf("AddTuntap over lo: %v, want fs.ErrExist", err)
	}
	out, _ := exec.Command("ip", "-n", n.Name(), "-d", "link", "show").CombinedOutput()
	for _, want := range []string{"tun7: ", "tun type tun pi off vnet_hdr on multi_queue", "alias netlab:test:x/tun7",
		"tap7: ", "tun type tap pi off vnet_hdr off persist on user nobody group nogroup"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ip -d link lacks %q:\n%s", want, out)
		}
	}
	if exec.Command("ip", "link", "show", "tun7").Run() == nil {
		t.Errorf("tun7 appeared in the host namespace")
	}
}
