package netlabtest

import (
	"path/filepath"
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

// Delay delays every packet the interface sends, on every kernel: netem
// where the kernel has it, else netlab's userspace emulator carries the
// link (made again as two TAPs the first time: a short cut in the middle
// of the test).
func Delay(d time.Duration) ImpairOption { return func(i *topology.Impair) { i.Delay = d } }

// Jitter varies the delay by up to d (needs Delay); uniform unless
// Distribution says otherwise.
func Jitter(d time.Duration) ImpairOption { return func(i *topology.Impair) { i.Jitter = d } }

// Distribution shapes the jitter as netem's tables: "uniform", "normal"
// (the jitter is then the standard deviation), "pareto", "paretonormal".
// Other than uniform, the userspace emulator.
func Distribution(name string) ImpairOption {
	return func(i *topology.Impair) {
		if name == "uniform" {
			name = ""
		}
		i.Distribution = name
	}
}

// Duplicate sends percent of the packets twice.
func Duplicate(percent float64) ImpairOption {
	return func(i *topology.Impair) { i.Duplicate = percent }
}

// Corrupt flips a bit in percent of the packets.
func Corrupt(percent float64) ImpairOption { return func(i *topology.Impair) { i.Corrupt = percent } }

// Reorder sends percent of the packets at once, the others delayed (needs
// Delay).
func Reorder(percent float64) ImpairOption { return func(i *topology.Impair) { i.Reorder = percent } }

// Limit sets the queue length in packets.
func Limit(packets int) ImpairOption { return func(i *topology.Impair) { i.Limit = packets } }

// LimitBytes sets the queue length in bytes (with a rate: a BDP-sized
// queue, say).
func LimitBytes(bytes int) ImpairOption { return func(i *topology.Impair) { i.LimitBytes = bytes } }

// GilbertElliott drops packets in bursts, netem's `loss gemodel p r 1-h
// 1-k`, in percent: p moves the chain from the good state to the bad one
// (per packet), r back (mean burst 1/r with lossBad 100 and lossGood 0);
// lossBad and lossGood are the losses in each state. It replaces Loss. The
// userspace emulator.
func GilbertElliott(p, r, lossBad, lossGood float64) ImpairOption {
	return func(i *topology.Impair) {
		i.GE = topology.GilbertElliott{P: p, R: r, LossBad: lossBad, LossGood: lossGood}
		i.Loss = 0
	}
}

// Trace replays a Mahimahi trace file (one millisecond a line at which one
// MTU-sized packet may leave, repeated) as the capacity of what the
// interface sends; a relative path is the test's directory's. It replaces
// Rate. The userspace emulator.
func Trace(path string) ImpairOption {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return func(i *topology.Impair) { i.Trace, i.Rate = topology.TraceRef{Name: path}, 0 }
}

// Emulator says who carries the interface's link: "userspace" (netlab's
// emulator, whatever the kernel can do), "kernel", or "auto" (the kernel
// where it can).
func Emulator(who string) ImpairOption {
	return func(i *topology.Impair) {
		if who == "auto" {
			who = ""
		}
		i.Emulator = who
	}
}

// NoImpair starts from no impairment at all instead of the interface's
// current ones (the file's, or an earlier Impair's).
func NoImpair() ImpairOption { return func(i *topology.Impair) { *i = topology.Impair{} } }

// Impair changes the impairments of the interface iface of namespace ns
// ("host" for a host-side veth end or a bridge port) in the middle of a
// test, as `netlab impair` does: the options replace the values in force,
// the others stay. When the test ends the interface gets the file's
// impairments back. Where the kernel cannot apply them (delay without
// sch_netem, say) netlab's userspace emulator carries the link; it fails
// the test if nothing can (a Gilbert-Elliott model on a TAP).
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
	res, err := l.eng.Impair(l.lab.Name, ns, iface, func(cur *topology.Impair) error {
		for _, o := range opts {
			o(cur)
		}
		im = *cur
		return nil
	})
	if err != nil {
		t.Fatalf("netlabtest: impair %s/%s (%s): %v", ns, iface, im, err)
	}
	for _, w := range res.Warnings {
		t.Logf("netlabtest: impair: %s", w)
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
