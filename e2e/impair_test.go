package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
	"github.com/netlab-dev/netlab/internal/observe"
)

// Impairments with real traffic: a rate measured by iperf3, loss counted by
// ping, netem-only fields refused where the kernel has no netem (and delay
// measured where it has), runtime changes by `netlab impair` and the
// fixture, a crash after the impair step, and drift repaired by up.

const rateLab = `name: imprate
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.71.0.1/24], impair: {rate: 20mbit}}
  b:
    interfaces:
      eth0: {addresses: [10.71.0.2/24]}
`

// lossLab puts the loss where a real network loses packets: on the bridge's
// port toward b, after they left a.
const lossLab = `name: imploss
bridges:
  br0:
    type: linux
    ports:
      pb: {impair: {loss: 20%}}
namespaces:
  a:
    interfaces:
      eth0: {peer: br0/pa, addresses: [10.72.0.1/24]}
  b:
    interfaces:
      eth0: {peer: br0/pb, addresses: [10.72.0.2/24]}
`

// pingLoss sends n pings 2 ms apart and returns the share lost, in percent.
func pingLoss(t *testing.T, ns, addr string, n int) float64 {
	t.Helper()
	r := inNS(t, ns, "ping", "-c", strconv.Itoa(n), "-i", "0.002", "-W", "1", "-q", addr)
	// ping exits 1 when some replies are missing; 2 on an error.
	if r.code == 2 {
		t.Fatalf("ping %s from %s:\n%s", addr, ns, r.out)
	}
	var sent, got int
	for _, line := range strings.Split(r.out, "\n") {
		if strings.Contains(line, "packets transmitted") {
			fmt.Sscanf(line, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	if sent != n {
		t.Fatalf("ping sent %d of %d:\n%s", sent, n, r.out)
	}
	return float64(sent-got) * 100 / float64(sent)
}

// planSteps counts the actions of `netlab plan` output (a heredoc is one).
func planSteps(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "add ") && !strings.HasPrefix(line, "delete ") && line != "EOF" && !strings.HasPrefix(line, "lab ") {
			n++
		}
	}
	return n
}

func within(got, want, tolerance float64) bool {
	return got >= want*(1-tolerance) && got <= want*(1+tolerance)
}

// TestImpairRate: iperf3 through a 20mbit veth measures 20 Mb/s ± 15 %,
// the reverse direction is not limited; a second up changes nothing; a
// qdisc deleted by hand is drift in status, repaired by up; the file
// changed to 50mbit converges with one action, measured 50 Mb/s ± 15 %.
func TestImpairRate(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) }) // after the labs' own cleanups
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "rate.yaml", rateLab)
	labUp(t, file, p, "imprate")
	a, b := p+"a", p+"b"

	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("second up changed something:\n%s", out)
	}
	if q := sh(t, "tc", "-n", a, "qdisc", "show", "dev", "eth0"); !strings.Contains(q, "tbf 4e4c: root") {
		t.Fatalf("no tbf of netlab's:\n%s", q)
	}
	st := mustNetlab(t, "status", p+"imprate")
	if !strings.Contains(st, "impair: rate 20mbit") {
		t.Errorf("status does not show the rate:\n%s", st)
	}

	got := iperf(t, b, a, "10.71.0.2", 4, 1)
	t.Logf("rate 20mbit: measured %.2f Mb/s", got/1e6)
	if !within(got, 20e6, 0.15) {
		t.Errorf("rate 20mbit: measured %.2f Mb/s, want 20 ± 15 %%", got/1e6)
	}
	rev := iperf(t, a, b, "10.71.0.1", 2, 1)
	t.Logf("reverse direction: %.0f Mb/s", rev/1e6)
	if rev < 100e6 {
		t.Errorf("reverse direction limited too: %.2f Mb/s", rev/1e6)
	}

	// Drift: the qdisc deleted by hand.
	sh(t, "tc", "-n", a, "qdisc", "del", "dev", "eth0", "root")
	if st := mustNetlab(t, "status", p+"imprate"); !strings.Contains(st, "tc -n "+a+" qdisc replace dev eth0 root handle 4e4c: tbf rate 20mbit") {
		t.Errorf("status does not report the deleted qdisc as drift:\n%s", st)
	}
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "(1 actions)") {
		t.Errorf("up after tc qdisc del:\n%s", out)
	}

	// The file edited: exactly that qdisc changes.
	writeFile(t, filepath.Dir(file), filepath.Base(file), strings.Replace(rateLab, "20mbit", "50mbit", 1))
	plan := mustNetlab(t, "plan", "--prefix", p, file)
	if n := planSteps(plan); n != 1 || !strings.Contains(plan, "tbf rate 50mbit") {
		t.Fatalf("plan after the edit has %d actions, want the one qdisc change:\n%s", n, plan)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	if again := mustNetlab(t, "plan", "--prefix", p, file); planSteps(again) != 0 {
		t.Fatalf("not converged after one action:\n%s", again)
	}
	got = iperf(t, b, a, "10.71.0.2", 4, 1)
	t.Logf("rate 50mbit: measured %.2f Mb/s", got/1e6)
	if !within(got, 50e6, 0.15) {
		t.Errorf("rate 50mbit: measured %.2f Mb/s, want 50 ± 15 %%", got/1e6)
	}
}

// TestImpairLoss: 2000 pings through loss: 20% lose between 15 and 25 %;
// edited to loss: 0, none is lost; the host's loss table is gone at down.
func TestImpairLoss(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) }) // after the labs' own cleanups
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "loss.yaml", lossLab)
	labUp(t, file, p, "imploss")
	a := p + "a"
	// Neighbours resolved before counting: through the loss a ping goes
	// unanswered a fifth of the time or more, so up to ten tries, not
	// ping's three (which all failed once in make test).
	for try := 1; ; try++ {
		r := inNS(t, a, "ping", "-c", "1", "-W", "1", "10.72.0.2")
		if r.code == 0 {
			break
		}
		if try == 10 {
			t.Fatalf("ping 10.72.0.2 from %s failed ten times through 20 %% loss:\n%s", a, r.out)
		}
	}

	lost := pingLoss(t, a, "10.72.0.2", 2000)
	t.Logf("loss 20%%: %.2f %% of 2000 pings lost", lost)
	if lost < 15 || lost > 25 {
		t.Errorf("loss 20%%: %.2f %% lost, want 15..25", lost)
	}
	if st := mustNetlab(t, "status", p+"imploss"); !strings.Contains(st, "impair: loss 20%") {
		t.Errorf("status does not show the loss:\n%s", st)
	}

	writeFile(t, filepath.Dir(file), filepath.Base(file), strings.Replace(lossLab, "loss: 20%", "loss: 0", 1))
	plan := mustNetlab(t, "plan", "--prefix", p, file)
	if n := planSteps(plan); n != 1 || !strings.Contains(plan, "nft delete table netdev netlab_"+strings.ReplaceAll(p, "-", "_")+"imploss") {
		t.Fatalf("plan after loss: 0 has %d actions:\n%s", n, plan)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	if lost := pingLoss(t, a, "10.72.0.2", 2000); lost != 0 {
		t.Errorf("loss: 0: %.2f %% lost", lost)
	}
}

// TestImpairNetemFields: delay and the other netem fields on a link that
// says emulator: kernel. Without netem (detected by trying, as netlab does)
// validate as root exits 2 and up exits 1, naming sch_netem and the file's
// line, the machine unchanged (without emulator: kernel the userspace
// emulator carries the link: emulated_test.go). With netem, a delay of
// 20ms raises the RTT by 20 ms ± 5.
func TestImpairNetemFields(t *testing.T) {
	requireRoot(t)
	sup, err := observe.ProbeImpair()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel: tbf %v, netem %v, nftables egress %v", sup.TBF, sup.Netem, sup.NftEgress)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) }) // after the labs' own cleanups
	p := newPrefix(t)
	delayed := strings.Replace(rateLab, "{rate: 20mbit}", "{delay: 20ms, duplicate: 1%, emulator: kernel}", 1)
	file := writeFile(t, t.TempDir(), "netem.yaml", delayed)
	if !sup.Netem {
		r := netlab(t, "validate", "--prefix", p, file)
		if r.code != 2 || !strings.Contains(r.out, "sch_netem") || !strings.Contains(r.out, "netem.yaml:5:") || !strings.Contains(r.out, "impair.duplicate") {
			t.Errorf("validate as root: exit %d, want 2 naming sch_netem at line 5:\n%s", r.code, r.out)
		}
		r = netlab(t, "up", "--prefix", p, file)
		if r.code != 1 || !strings.Contains(r.out, "sch_netem") || !strings.Contains(r.out, "netem.yaml:5:") {
			t.Errorf("up: exit %d, want 1 naming sch_netem:\n%s", r.code, r.out)
		}
		if st := netlab(t, "status"); strings.Contains(st.out, p+"imprate") {
			t.Errorf("up left a lab behind:\n%s", st.out)
		}
		sameHost(t, before)
		// Rate and loss need no netem: the same file without them is fine.
		if r := netlab(t, "validate", "--prefix", p, writeFile(t, t.TempDir(), "ok.yaml", rateLab)); r.code != 0 {
			t.Errorf("validate of a rate: exit %d\n%s", r.code, r.out)
		}
		return
	}
	// This kernel has netem: measure the delay.
	plain := writeFile(t, t.TempDir(), "plain.yaml", strings.Replace(rateLab, ", impair: {rate: 20mbit}", "", 1))
	labUp(t, plain, p, "imprate")
	rtt := func() float64 {
		out := inNS(t, p+"a", "ping", "-c", "20", "-i", "0.05", "-q", "10.71.0.2").out
		var mn, avg float64
		i := strings.Index(out, "rtt min/avg/max/mdev = ")
		if i < 0 {
			t.Fatalf("ping:\n%s", out)
		}
		fmt.Sscanf(strings.ReplaceAll(out[i+len("rtt min/avg/max/mdev = "):], "/", " "), "%g %g", &mn, &avg)
		return avg
	}
	base := rtt()
	writeFile(t, filepath.Dir(plain), filepath.Base(plain), strings.Replace(rateLab, "{rate: 20mbit}", "{delay: 20ms}", 1))
	mustNetlab(t, "up", "-q", "--prefix", p, plain)
	d := rtt() - base
	t.Logf("delay 20ms: RTT up by %.2f ms", d)
	if d < 15 || d > 25 {
		t.Errorf("delay 20ms raised the RTT by %.2f ms, want 20 ± 5", d)
	}
}

// TestImpairRuntime: `netlab impair` changes an interface's impairments of
// a running lab (status says so, a second call changes nothing), --reset
// gives the file's back; the fixture's Lab.Impair does the same for a
// test and restores the file's values when it ends.
func TestImpairRuntime(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) }) // after the labs' own cleanups
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "rt.yaml", strings.Replace(lossLab, "loss: 20%", "loss: 0", 1))
	labUp(t, file, p, "imploss")
	lab, a := p+"imploss", p+"a"
	ping(t, a, "10.72.0.2")

	out := mustNetlab(t, "impair", lab, "host/"+p+"pb", "--loss", "20%")
	if !strings.Contains(out, "loss 20%") || !strings.Contains(out, "set at run time") {
		t.Errorf("netlab impair:\n%s", out)
	}
	if out := mustNetlab(t, "impair", lab, "host/"+p+"pb", "--loss", "20%"); !strings.Contains(out, "up to date") {
		t.Errorf("second netlab impair changed something:\n%s", out)
	}
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "impair: loss 20% (netlab impair)") || !strings.Contains(st, "drift: none") {
		t.Errorf("status after netlab impair:\n%s", st)
	}
	lost := pingLoss(t, a, "10.72.0.2", 2000)
	t.Logf("netlab impair --loss 20%%: %.2f %% lost", lost)
	if lost < 15 || lost > 25 {
		t.Errorf("netlab impair --loss 20%%: %.2f %% lost, want 15..25", lost)
	}
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("up after netlab impair undid it:\n%s", out)
	}
	if r := netlab(t, "impair", lab, "host/"+p+"pb", "--loss", "120%"); r.code != 2 {
		t.Errorf("--loss 120%%: exit %d, want 2\n%s", r.code, r.out)
	}
	if r := netlab(t, "impair", lab, "nope/eth0", "--loss", "1%"); r.code != 1 || !strings.Contains(r.out, "no such interface") {
		t.Errorf("unknown interface: exit %d\n%s", r.code, r.out)
	}
	mustNetlab(t, "impair", lab, "host/"+p+"pb", "--reset")
	if st := mustNetlab(t, "status", lab); strings.Contains(st, "impair:") {
		t.Errorf("status after --reset:\n%s", st)
	}
	if lost := pingLoss(t, a, "10.72.0.2", 500); lost != 0 {
		t.Errorf("after --reset: %.2f %% lost", lost)
	}
	// --clear removes the file's too.
	mustNetlab(t, "down", lab)
	p2 := newPrefix(t)
	rate := writeFile(t, t.TempDir(), "rate.yaml", rateLab)
	labUp(t, rate, p2, "imprate")
	mustNetlab(t, "impair", p2+"imprate", "a/eth0", "--clear") // the file's names work too
	if q := sh(t, "tc", "-n", p2+"a", "qdisc", "show", "dev", "eth0"); strings.Contains(q, "tbf") {
		t.Errorf("--clear left the tbf:\n%s", q)
	}
	mustNetlab(t, "impair", p2+"imprate", p2+"a/eth0", "--reset")
	if q := sh(t, "tc", "-n", p2+"a", "qdisc", "show", "dev", "eth0"); !strings.Contains(q, "rate 20Mbit") {
		t.Errorf("--reset did not give the file's rate back:\n%s", q)
	}
	mustNetlab(t, "down", p2+"imprate")

	// The fixture.
	fx := netlabtest.Up(t, file)
	fa, fb := fx.NS("a"), fx.Addr("b", "eth0")
	fx.Ping(t, "a", "b")
	t.Run("impaired", func(t *testing.T) {
		fx.Impair(t, "host", "pb", netlabtest.Loss(20))
		if im := fx.Impairment(t, "host", "pb"); im.Loss != 20 {
			t.Fatalf("impairment now %s", im)
		}
		lost := pingLoss(t, fa, fb, 2000)
		t.Logf("lab.Impair Loss(20): %.2f %% lost", lost)
		if lost < 15 || lost > 25 {
			t.Errorf("lab.Impair Loss(20): %.2f %% lost, want 15..25", lost)
		}
	})
	if im := fx.Impairment(t, "host", "pb"); !im.IsZero() {
		t.Errorf("after the subtest: %s, want the file's (none)", im)
	}
	if lost := pingLoss(t, fa, fb, 500); lost != 0 {
		t.Errorf("after the fixture restored: %.2f %% lost", lost)
	}
}

// TestImpairCrash: netlab dies right after the impair step (the host's
// loss table made, not yet reported); down then leaves the host exactly as
// it was.
func TestImpairCrash(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "crash.yaml", strings.Replace(lossLab, "loss: 20%", "loss: 0", 1))
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	lab := p + "imploss"
	t.Cleanup(func() { netlab(t, "down", lab) })
	for _, args := range [][]string{
		{"host/" + p + "pb", "--loss", "20%"},
		{"a/eth0", "--rate", "1mbit", "--loss", "5%"},
	} {
		r := run(t, []string{"NETLAB_CRASH_AFTER=1"}, netlabBin, append([]string{"impair", lab}, args...)...)
		if r.code != 99 {
			t.Fatalf("crash after the impair step: exit %d, want 99\n%s", r.code, r.out)
		}
	}
	if q := sh(t, "nft", "list", "tables"); !strings.Contains(q, "netdev netlab_"+strings.ReplaceAll(p, "-", "_")+"imploss") {
		t.Fatalf("the crashed impair made no host loss table:\n%s", q)
	}
	if dry := mustNetlab(t, "down", "--dry-run", lab); !strings.Contains(dry, "nft delete table netdev") {
		t.Errorf("down --dry-run does not remove the loss table:\n%s", dry)
	}
	mustNetlab(t, "down", lab)
	sameHost(t, before)
}

// TestImpairOVSPort: an impaired Open vSwitch port is an AF_PACKET
// (system) port, since Open vSwitch writes AF_XDP frames past the qdisc and
// the egress hook; --reset gives it its AF_XDP type back.
func TestImpairOVSPort(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.0.0/24", "fd00:10::/64")
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) })
	p := newPrefix(t)
	labUp(t, "../labs/blue-red.yaml", p, "blue-red")
	lab, blue := p+"blue-red", p+"blue"
	typeOf := func() string {
		st := mustNetlab(t, "status", lab)
		i := strings.Index(st, p+"veth2(")
		if i < 0 {
			t.Fatalf("no port veth2 in status:\n%s", st)
		}
		return strings.TrimSuffix(strings.Fields(st[i:])[1], ")")
	}
	first := typeOf()
	ping(t, blue, "10.0.0.2")
	mustNetlab(t, "impair", lab, "host/veth2", "--loss", "20%")
	if got := typeOf(); got != "system" {
		t.Errorf("impaired port is %s, want system", got)
	}
	lost := pingLoss(t, blue, "10.0.0.2", 2000)
	t.Logf("OVS port (was %s) with loss 20%%: %.2f %% lost", first, lost)
	if lost < 15 || lost > 25 {
		t.Errorf("loss 20%% on an OVS port: %.2f %% lost, want 15..25", lost)
	}
	mustNetlab(t, "impair", lab, "host/veth2", "--reset")
	if got := typeOf(); got != first {
		t.Errorf("after --reset the port is %s, want %s again", got, first)
	}
}
