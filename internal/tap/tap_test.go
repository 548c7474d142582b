package tap

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// newNS creates a namespace "nlt"+4 hex digits, deleted when the test ends
// (with the devices in it).
func newNS(t *testing.T) string {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, TAP devices")
	name := testkit.Name(t, "nlt", 4)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// inNS runs fn on a thread inside ns.
func inNS(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return namespace.Do(h, fn)
}

// tuntapFlags reads the device's IFF_* flags as sysfs shows them.
func tuntapFlags(t *testing.T, ns, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+name+"/tun_flags").CombinedOutput()
	if err != nil {
		t.Fatalf("tun_flags of %s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// SetMAC changes the MAC and leaves the device's flags as they were: the
// first queue attached to a TAP sets the device's feature flags, so
// attaching without IFF_VNET_HDR used to turn vnet_hdr off.
func TestSetMACKeepsFlags(t *testing.T) {
	ns := newNS(t)
	h, err := kernel.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	specs := map[string]state.Tuntap{
		"tapv":  {TAP: true, VnetHdr: true, Owner: -1, Group: -1},
		"tapmq": {TAP: true, VnetHdr: true, MultiQueue: true, Owner: -1, Group: -1},
		"tapp":  {TAP: true, Owner: -1, Group: -1},
		"tun0":  {Owner: -1, Group: -1},
	}
	for name, spec := range specs {
		if err := h.AddTuntap(name, "netlab:test:"+ns+"/"+name, spec); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"tapv", "tapmq", "tapp"} {
		before := tuntapFlags(t, ns, name)
		mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, byte(i)}
		if err := inNS(t, ns, func() error { return SetMAC(name, mac) }); err != nil {
			t.Errorf("SetMAC %s: %v", name, err)
			continue
		}
		if after := tuntapFlags(t, ns, name); after != before {
			t.Errorf("%s: tun_flags %s after SetMAC, were %s", name, after, before)
		}
		var got net.HardwareAddr
		inNS(t, ns, func() error {
			l, err := netlink.LinkByName(name)
			if err == nil {
				got = l.Attrs().HardwareAddr
			}
			return err
		})
		if got.String() != mac.String() {
			t.Errorf("%s: MAC %s, want %s", name, got, mac)
		}
	}
	if flags := tuntapFlags(t, ns, "tapmq"); flags != "0x5902" {
		t.Errorf("tapmq: tun_flags %s, want 0x5902 (tap, multi_queue, no_pi, persist, vnet_hdr)", flags)
	}
	for name, want := range map[string]string{"tun0": "is a tun, not a tap", "lo": "is a device, not a tap", "nosuch0": "not found"} {
		err := inNS(t, ns, func() error { return SetMAC(name, net.HardwareAddr{2, 0, 0, 0, 0, 1}) })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SetMAC %s: %v, want an error with %q", name, err, want)
		}
		var ke *tundev.KindError
		if typed := errors.Is(err, tundev.ErrNoDevice) || errors.As(err, &ke); !typed {
			t.Errorf("SetMAC %s: %v is neither tundev.ErrNoDevice nor a *tundev.KindError", name, err)
		}
	}
	// Nothing was created by the attempts.
	if exec.Command("ip", "-n", ns, "link", "show", "nosuch0").Run() == nil {
		t.Errorf("SetMAC created nosuch0")
	}
	if err := SetMAC("tapv", net.HardwareAddr{3, 0, 0, 0, 0, 1}); err == nil || !strings.Contains(err.Error(), "multicast") {
		t.Errorf("SetMAC with a multicast MAC: %v", err)
	}
}
