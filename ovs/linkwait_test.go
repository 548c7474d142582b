package ovs

import (
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestLinkWatch: the watch wakes on a link made in its namespace, and only
// then (a wait with no change runs out). In a namespace of the test's own,
// on a thread that is thrown away with it.
func TestLinkWatch(t *testing.T) {
	requireRoot(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return err
			}
			w := newLinkWatch()
			defer w.close()
			if w.fd < 0 {
				t.Error("no netlink socket")
			}
			if w.wait(time.Millisecond) {
				t.Error("notified with no change of links")
			}
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lw0"}, PeerName: "lw1"}); err != nil {
				return err
			}
			// A bound far beyond any wake-up: it only tells a notification
			// from a wait that ran out.
			if !w.wait(time.Minute) {
				t.Error("not notified of a new veth")
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
