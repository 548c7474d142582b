package tundev_test

import (
	"errors"
	"io/fs"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// newNS creates a namespace "nlu"+4 hex digits, deleted (with its devices)
// when the test ends, and returns its name and a handle on it.
func newNS(t *testing.T) (string, netns.NsHandle) {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, TUN/TAP devices", "ip", "ethtool")
	name := testkit.Name(t, "nlu", 4)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	h, err := namespace.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name, h
}

// in runs fn on a thread inside the namespace, where tundev acts.
func in(h netns.NsHandle, fn func() error) error { return namespace.Do(h, fn) }

// create makes a device in the namespace or fails the test.
func create(t *testing.T, h netns.NsHandle, name string, s tundev.Spec) {
	t.Helper()
	if err := in(h, func() error { return tundev.Create(name, s) }); err != nil {
		t.Fatal(err)
	}
}

// tunFlags reads the device's IFF_* flags as sysfs shows them.
func tunFlags(t *testing.T, ns, name string) string {
	t.Helper()
	return strings.TrimSpace(testkit.Run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+name+"/tun_flags"))
}

// exists says whether the namespace ns ("": the sandbox's host one) has a
// link name.
func exists(ns, name string) bool {
	if ns == "" {
		return exec.Command("ip", "link", "show", name).Run() == nil
	}
	return exec.Command("ip", "-n", ns, "link", "show", name).Run() == nil
}

// Create makes persistent devices in the calling thread's namespace with
// the flags, owner and group asked for; it is exclusive (a taken name is
// fs.ErrExist, never an attach), and a failure leaves nothing behind.
func TestCreate(t *testing.T) {
	ns, h := newNS(t)
	create(t, h, "tun7", tundev.Spec{Kind: tundev.TUN, MultiQueue: true, VnetHdr: true, Owner: -1, Group: -1})
	create(t, h, "tap7", tundev.Spec{Kind: tundev.TAP, Owner: 65534, Group: 65534})
	out := testkit.Run(t, "ip", "-n", ns, "-d", "link", "show")
	for _, want := range []string{`tun7: `, `tun type tun pi off vnet_hdr on multi_queue .*persist on`, `tap7: `,
		`tun type tap pi off vnet_hdr off persist on user nobody group nogroup`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("ip -d link lacks %q:\n%s", want, out)
		}
	}
	if exists("", "tun7") {
		t.Errorf("tun7 appeared in the sandbox's host namespace")
	}
	for _, name := range []string{"tun7", "tap7", "lo"} {
		err := in(h, func() error { return tundev.Create(name, tundev.Spec{Kind: tundev.TUN, Owner: -1, Group: -1}) })
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "add tun "+name+": ") {
			t.Errorf("Create over %s: %v, want fs.ErrExist", name, err)
		}
	}
	// (uid_t)-1 is no uid: TUNSETOWNER fails after TUNSETIFF made the
	// device, which then goes with the descriptor.
	err := in(h, func() error {
		return tundev.Create("tapbad", tundev.Spec{Kind: tundev.TAP, Owner: 1<<32 - 1, Group: -1})
	})
	if err == nil || !strings.Contains(err.Error(), "TUNSETOWNER") {
		t.Errorf("Create with owner 2^32-1: %v", err)
	}
	for _, bad := range []struct {
		name string
		spec tundev.Spec
	}{{"tunx", tundev.Spec{Owner: -1, Group: -1}}, {"tun%d", tundev.Spec{Kind: tundev.TUN, Owner: -1, Group: -1}}, {"", tundev.Spec{Kind: tundev.TUN, Owner: -1, Group: -1}}} {
		if err := in(h, func() error { return tundev.Create(bad.name, bad.spec) }); err == nil {
			t.Errorf("Create(%q, %+v) succeeded", bad.name, bad.spec)
		}
	}
	out = testkit.Run(t, "ip", "-n", ns, "-br", "link", "show")
	for _, gone := range []string{"tapbad", "tunx", "tun0"} {
		if strings.Contains(out, gone) {
			t.Errorf("a failed Create left %s:\n%s", gone, out)
		}
	}
}

// Attach attaches queues to an existing device of the kind asked, never
// creates one, keeps the device's own flags unless told otherwise, and
// says in typed errors why it cannot.
func TestAttach(t *testing.T) {
	ns, h := newNS(t)
	create(t, h, "tun7", tundev.Spec{Kind: tundev.TUN, MultiQueue: true, VnetHdr: true, Owner: -1, Group: -1})
	create(t, h, "single0", tundev.Spec{Kind: tundev.TUN, Owner: -1, Group: -1})
	create(t, h, "tapv", tundev.Spec{Kind: tundev.TAP, VnetHdr: true, Owner: -1, Group: -1})
	attach := func(name string, kind tundev.Kind, opts ...tundev.Option) ([]tundev.Queue, error) {
		var qs []tundev.Queue
		err := in(h, func() (err error) {
			qs, err = tundev.Attach(name, kind, opts...)
			return err
		})
		return qs, err
	}

	qs, err := attach("tun7", tundev.TUN, tundev.Queues(3), tundev.WithVnetHdr(tundev.OffloadGSO))
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 || !qs[2].VnetHdr || qs[2].HeaderLen() != tundev.VnetHdrLen || qs[2].String() != "tun tun7 queue 2" {
		t.Errorf("queues %+v", qs)
	}
	if out := testkit.Run(t, "ip", "netns", "exec", ns, "ethtool", "-k", "tun7"); !strings.Contains(out, "tcp-segmentation-offload: on") {
		t.Errorf("tun7's offloads after WithVnetHdr(OffloadGSO):\n%s", out)
	}
	for _, q := range qs {
		q.Close()
	}

	var ke *tundev.KindError
	if _, err := attach("tun7", tundev.TAP); !errors.As(err, &ke) || ke.Got != "tun" || !strings.Contains(err.Error(), "attach tap tun7: is a tun, not a tap") {
		t.Errorf("tun7 as a TAP: %v", err)
	}
	if _, err := attach("lo", tundev.TUN); !errors.As(err, &ke) || ke.Got != "device" || !strings.Contains(err.Error(), "is a device, not a tun") {
		t.Errorf("lo as a TUN: %v", err)
	}
	if _, err := attach("nosuch0", tundev.TUN); !errors.Is(err, tundev.ErrNoDevice) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a missing device: %v", err)
	}
	if exists(ns, "nosuch0") || exists("", "nosuch0") {
		t.Errorf("Attach created nosuch0")
	}
	if _, err := attach("single0", tundev.TUN, tundev.Queues(2)); !errors.Is(err, tundev.ErrNotMultiQueue) {
		t.Errorf("two queues on a single-queue tun: %v", err)
	}
	if _, err := attach("tun7", tundev.TUN, tundev.Queues(0)); err == nil {
		t.Errorf("zero queues attached")
	}
	one, err := attach("single0", tundev.TUN, tundev.WithoutVnetHdr())
	if err != nil {
		t.Fatal(err)
	}
	if one[0].VnetHdr {
		t.Errorf("WithoutVnetHdr gave a header")
	}
	if _, err := attach("single0", tundev.TUN); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("a second queue on a single-queue tun: %v, want EBUSY", err)
	}
	one[0].Close()

	// As the device is: its flags stay (vnet_hdr stays on for a VM).
	before := tunFlags(t, ns, "tapv")
	qs, err = attach("tapv", tundev.TAP)
	if err != nil {
		t.Fatal(err)
	}
	if !qs[0].VnetHdr {
		t.Errorf("tapv's queue has no header as the device has")
	}
	qs[0].Close()
	if after := tunFlags(t, ns, "tapv"); after != before {
		t.Errorf("tapv: tun_flags %s after attaching as it is, were %s", after, before)
	}
	// Told otherwise, the attacher sets the device's flags.
	qs, err = attach("tapv", tundev.TAP, tundev.WithoutVnetHdr())
	if err != nil {
		t.Fatal(err)
	}
	qs[0].Close()
	if after := tunFlags(t, ns, "tapv"); after == before {
		t.Errorf("tapv: tun_flags %s after attaching without a header, as before", after)
	}
}
