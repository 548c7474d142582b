package kernel

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// A run's sysctls are opened in a proc of its own, mounted nowhere, each
// namespace seeing its own values through the same mount; after
// procRefresh opens a fresh mount takes over, and what was opened in the
// old one still reads.
func TestProcSys(t *testing.T) {
	requireRoot(t)
	fd, err := mountProc()
	if err != nil {
		t.Fatalf("a proc of netlab's own (root, the machine's user namespace): %v", err)
	}
	unix.Close(fd)

	hs := NewHandles()
	defer hs.Close()
	var ns []*NS
	for _, v := range []string{"1", "0"} {
		n := newNS(t)
		must(t, n.SetSysctl("net.ipv4.ip_forward", v))
		ns = append(ns, n)
	}
	sys := &hs.sys
	read := func(n *NS) string {
		t.Helper()
		var v string
		must(t, namespace.Do(n.file(), func() error {
			var err error
			v, err = readSysctl(sys, "net.ipv4.ip_forward")
			return err
		}))
		return v
	}
	for round := range 2 {
		if a, b := read(ns[0]), read(ns[1]); a != "1" || b != "0" {
			t.Fatalf("round %d: ip_forward %s and %s through one mount, want 1 and 0", round, a, b)
		}
	}
	sys.mu.Lock()
	first := sys.cur
	sys.mu.Unlock()
	if first == nil || first.shared {
		t.Fatalf("opens went to /proc, not a proc of the run's own: %+v", first)
	}
	// An open file outlives its mount's turn.
	var kept int
	must(t, namespace.Do(ns[0].file(), func() error {
		var err error
		kept, _, err = sys.openSysctl("net.ipv4.ip_forward", unix.O_RDONLY)
		return err
	}))
	defer unix.Close(kept)
	for range procRefresh {
		read(ns[1])
	}
	sys.mu.Lock()
	second := sys.cur
	sys.mu.Unlock()
	if second == first || !first.retired || first.users != 0 {
		t.Errorf("after %d opens: the same mount (%v), or the first not retired (%+v)", procRefresh, second == first, first)
	}
	if v, err := preadValue(kept, make([]byte, 16)); err != nil || v != "1" {
		t.Errorf("a file opened in the retired mount reads %q, %v", v, err)
	}
}
