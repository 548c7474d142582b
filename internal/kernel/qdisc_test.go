package kernel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/topology"
)

// qdiscNS makes a throwaway namespace with a veth pair v0 (here) and v1 (in
// a second one), both up.
func qdiscNS(t *testing.T) *NS {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, tc", "tc")
	n, peer := newNS(t), newNS(t)
	must(t, n.AddVeth("v0", "netlab:test:"+n.Name()+"/v0", peer, "v1", "netlab:test:"+peer.Name()+"/v1"))
	must(t, n.SetUp("v0", true))
	must(t, peer.SetUp("v1", true))
	return n
}

func TestQdiscLifecycle(t *testing.T) {
	n := qdiscNS(t)
	ns := n.Name()
	if err := n.SetQdisc("v0", &TBF{RateBytes: 2500000, Burst: 25000, Limit: 150000}, nil); err != nil {
		t.Fatal(err)
	}
	if out := testkit.Run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "qdisc tbf 4e4c: root") || !strings.Contains(out, "rate 20Mbit burst 25000b") {
		t.Fatalf("tc says:\n%s", out)
	}
	obs, err := n.ObserveQdiscs()
	if err != nil {
		t.Fatal(err)
	}
	q := obs["v0"]
	if q == nil || !q.Ours || q.Impair.Rate != 20e6 || q.LimitBytes != 150000 || q.Burst < 24900 || q.Burst > 25100 {
		t.Fatalf("observed %+v", q)
	}
	if obs["lo"] != nil {
		t.Errorf("lo's default qdisc observed: %+v", obs["lo"])
	}
	// In place: a new rate.
	if err := n.SetQdisc("v0", &TBF{RateBytes: 6250000, Burst: 62500, Limit: 375000}, nil); err != nil {
		t.Fatal(err)
	}
	if out := testkit.Run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "rate 50Mbit") {
		t.Fatalf("tc says:\n%s", out)
	}
	if err := n.DeleteQdisc("v0", 0x4e4c); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteQdisc("v0", 0x4e4c); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if out := testkit.Run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); strings.Contains(out, "tbf") {
		t.Fatalf("tbf left:\n%s", out)
	}
	// A link that is gone has no qdisc to delete; one that is not there
	// has none to set.
	if err := n.DeleteQdisc("nosuch0", 0x4e4c); err != nil {
		t.Errorf("delete on a missing link: %v", err)
	}
	if err := n.SetQdisc("nosuch0", &TBF{RateBytes: 2500000, Burst: 25000, Limit: 150000}, nil); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("set on a missing link: %v, want ErrLinkNotFound", err)
	}
}

func TestForeignQdiscUntouched(t *testing.T) {
	n := qdiscNS(t)
	ns := n.Name()
	testkit.Run(t, "tc", "-n", ns, "qdisc", "add", "dev", "v0", "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "16kb", "limit", "30kb")
	obs, err := n.ObserveQdiscs()
	if err != nil {
		t.Fatal(err)
	}
	if q := obs["v0"]; q == nil || q.Ours || q.Kind != "tbf" || q.Handle != 1 {
		t.Fatalf("observed %+v", q)
	}
	if err := n.SetQdisc("v0", &TBF{RateBytes: 2500000, Burst: 25000, Limit: 150000}, nil); !errors.Is(err, ErrQdiscNotOurs) {
		t.Fatalf("set over a foreign qdisc: %v", err)
	}
	if err := n.DeleteQdisc("v0", 0x4e4c); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteQdisc("v0", 1); !errors.Is(err, ErrQdiscNotOurs) {
		t.Errorf("delete of handle 1: %v, want ErrQdiscNotOurs", err)
	}
	if out := testkit.Run(t, "tc", "-n", ns, "qdisc", "show", "dev", "v0"); !strings.Contains(out, "qdisc tbf 1: root") || !strings.Contains(out, "rate 1Mbit") {
		t.Fatalf("foreign qdisc touched:\n%s", out)
	}
}

// Netem cannot be made on this project's kernels (no sch_netem), so its
// encoding is checked without the kernel: what netemQdisc sends reads back
// through netemInto as the file wrote it.
func TestNetemRoundTrip(t *testing.T) {
	n := &Netem{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Limit: 500}
	q := netemQdisc(3, netlink.HANDLE_ROOT, n)
	if q.Attrs().Handle != netlink.MakeHandle(0x4e4d, 0) || q.Limit != 500 {
		t.Fatalf("qdisc %+v", q)
	}
	var im topology.Impair
	netemInto(&im, q)
	want := topology.Impair{Delay: n.Delay, Jitter: n.Jitter, Duplicate: 1, Corrupt: 0.1, Reorder: 25, Limit: 500}
	if im != want {
		t.Errorf("read back %+v, want %+v", im, want)
	}
	// netem's default queue reads as none; under a tbf the limit is the tbf's.
	q = netemQdisc(3, netlink.MakeHandle(0x4e4c, 1), &Netem{Delay: time.Millisecond})
	im = topology.Impair{Rate: 1e6}
	netemInto(&im, q)
	if im.Limit != 0 || im.Delay != time.Millisecond {
		t.Errorf("child read back %+v", im)
	}
}
