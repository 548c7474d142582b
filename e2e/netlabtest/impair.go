package netlabtest

import (
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// ImpairOption sets one impairment for Lab.Impair.
type ImpairOption func(*topology.Impair)

// Rate limits the interface's egress to bps bits per second (0: no limit).
func Rate(bps uint64) ImpairOption { return func(i *topology.Impair) { i.Rate = bps } }

// Loss drops percent (0..100) of the packets the interface sends.
func Loss(percent float64) ImpairOption { return func(i *topology.Impair) { i.Loss = percent } }

// Delay delays every packet the interface sends (needs sch_netem).
func Delay(d time.Duration) ImpairOption { return func(i *topology.Impair) { i.Delay = d } }

// Jitter varies the delay by up to d (needs Delay and sch_netem).
func Jitter(d time.Duration) ImpairOption { return func(i *topology.Impair) { i.Jitter = d } }

// Duplicate sends percent of the packets twice (needs sch_netem).
func Duplicate(percent float64) ImpairOption {
	return func(i *topology.Impair) { i.Duplicate = percent }
}

// Corrupt flips a bit in percent of the packets (needs sch_netem).
func Corrupt(percent float64) ImpairOption { return func(i *topology.Impair) { i.Corrupt = percent } }

// Reorder sends percent of the packets at once, the others delayed (needs
// Delay and sch_netem).
func Reorder(percent float64) ImpairOption { return func(i *topology.Impair) { i.Reorder = percent } }

// Limit sets the queue length in packets.
func Limit(packets int) ImpairOption { return func(i *topology.Impair) { i.Limit = packets } }

// NoImpair starts from no impairment at all instead of the interface's
// current ones (the file's, or an earlier Impair's).
func NoImpair() ImpairOption { return func(i *topology.Impair) { *i = topology.Impair{} } }

// Impair changes the impairments of the interface iface of namespace ns
// ("host" for a host-side veth end or a bridge port) in the middle of a
// test, as `netlab impair` does: the options replace the values in force,
// the others stay. When the test ends the interface gets the file's
// impairments back. It fails the test if the kernel cannot apply them
// (delay without sch_netem, say).
//
//	lab.Impair(t, "blue", "veth1", netlabtest.Loss(20), netlabtest.Rate(1e6))
func (l *Lab) Impair(t testing.TB, ns, iface string, opts ...ImpairOption) {
	t.Helper()
	ns, iface = l.NS(ns), l.ifName(ns, iface)
	// Registered first: a failed change may still have been journaled.
	t.Cleanup(func() {
		if _, err := l.eng.Impair(l.lab.Name, ns, iface, nil); err != nil {
			t.Errorf("netlabtest: restore the file's impairments of %s/%s: %v", ns, iface, err)
		}
	})
	var im topology.Impair
	if _, err := l.eng.Impair(l.lab.Name, ns, iface, func(cur *topology.Impair) error {
		for _, o := range opts {
			o(cur)
		}
		im = *cur
		return nil
	}); err != nil {
		t.Fatalf("netlabtest: impair %s/%s (%s): %v", ns, iface, im, err)
	}
}

// Impairment returns what the lab now wants on the interface: the file's
// impairments, or those an Impair call set.
func (l *Lab) Impairment(t testing.TB, ns, iface string) topology.Impair {
	t.Helper()
	im, _, err := l.eng.CurrentImpair(l.lab.Name, l.NS(ns), l.ifName(ns, iface))
	if err != nil {
		t.Fatalf("netlabtest: impairment of %s/%s: %v", ns, iface, err)
	}
	return im
}

// ifName is the machine name of an interface: host-side names carry the
// lab's prefix, namespace interfaces keep the file's.
func (l *Lab) ifName(ns, iface string) string {
	if ns == topology.Host && !strings.HasPrefix(iface, l.prefix) {
		return l.prefix + iface
	}
	return iface
}
