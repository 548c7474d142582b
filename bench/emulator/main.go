// Command emulator measures netlab's userspace link emulator (netlab
// emulate) against its targets, everything in one run so that ratios and
// spreads compare like with like:
//
//   - TCP through an emulated link with no impairment against a plain veth
//     pair of the same lab, and the emulator's CPU per Gb/s;
//   - delay of 5, 20, 100 and 200 ms each way: the median and 99th
//     percentile of 200 pings against twice the delay plus the link's round
//     trip without delay; jitter's standard deviation;
//   - a rate of 10 and 100 Mb/s by iperf3 (10 s), also with 20 ms each way
//     and a queue of the bandwidth-delay product;
//   - Gilbert-Elliott losses over 20,000 numbered UDP datagrams: the loss
//     rate and mean burst against the model's;
//   - trace replay: a UDP flood above the trace's capacity, its throughput
//     in each 1-s window of the trace against what the trace offers then.
//
// It drives the netlab binary (-netlab) as a user would: up, impair, exec,
// status, down; with -sandbox, in that sandbox of root's. Root. Prints a
// Markdown report (-o writes it too).
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/linkmodel"
	"github.com/netlab-dev/netlab/topology"
)

// lab: a1-b1 a plain veth pair; a2-b2 the emulated link under test.
const lab = `name: %s
namespaces:
  a1:
    interfaces:
      eth0: {peer: b1/eth0, addresses: [10.81.1.1/24], impair: {emulator: kernel}}
  b1:
    interfaces:
      eth0: {addresses: [10.81.1.2/24]}
  a2:
    interfaces:
      eth0: {peer: b2/eth0, addresses: [10.81.2.1/24], impair: {emulator: userspace}}
  b2:
    interfaces:
      eth0: {addresses: [10.81.2.2/24]}
`

type bench struct {
	netlab  string
	sandbox string
	name    string
	file    string
	w       io.Writer
	secs    int
	traces  string
	self    string
	only    string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "udp" {
		os.Exit(udpHelper(os.Args[2:]))
	}
	netlabBin := flag.String("netlab", "bench/bin/netlab", "the netlab binary")
	sandbox := flag.String("sandbox", "", "run the lab in this sandbox of root's (netlab --sandbox)")
	secs := flag.Int("t", 10, "seconds of each iperf3 run")
	out := flag.String("o", "", "also write the report here")
	only := flag.String("only", "", "run only these sections (throughput,delay,jitter,rate,ge,trace)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/emulator: needs root")
		os.Exit(1)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	abs, _ := filepath.Abs(*netlabBin)
	tmp, err := os.MkdirTemp("", "netlab-bench-emu-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(tmp)
	var report bytes.Buffer
	b := &bench{netlab: abs, sandbox: *sandbox, name: "be" + strconv.Itoa(os.Getpid()%1000) + "emu", w: io.MultiWriter(os.Stdout, &report),
		secs: *secs, traces: "labs/traces", self: self, only: *only}
	b.file = filepath.Join(tmp, "emu.yaml")
	os.WriteFile(b.file, []byte(fmt.Sprintf(lab, b.name)), 0o644)
	err = b.run()
	if *out != "" {
		os.WriteFile(*out, report.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/emulator:", err)
		os.Exit(1)
	}
}

// nl runs netlab (in the sandbox, if one was given).
func (b *bench) nl(args ...string) (string, error) { return b.nlEnv(nil, args...) }

// nlEnv runs netlab with more environment.
func (b *bench) nlEnv(env []string, args ...string) (string, error) {
	if b.sandbox != "" {
		args = append([]string{"--sandbox", b.sandbox}, args...)
	}
	cmd := exec.Command(b.netlab, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netlab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// in runs a command in a namespace of the lab.
func (b *bench) in(ns string, args ...string) (string, error) {
	return b.nl(append([]string{"exec", b.name, ns, "--"}, args...)...)
}

func (b *bench) impair(iface string, flags ...string) error {
	_, err := b.nl(append([]string{"impair", b.name, iface}, flags...)...)
	return err
}

func (b *bench) run() error {
	start := time.Now()
	fmt.Fprintf(b.w, "## The userspace link emulator (bench/emulator)\n\n%s. Machine: %s. One run of each figure.\n\n", start.Format("2006-01-02 15:04 MST"), machine())
	if _, err := b.nl("up", "-q", b.file); err != nil {
		return err
	}
	defer b.nl("down", b.name)
	for _, s := range []struct {
		name string
		run  func() error
	}{{"throughput", b.throughput}, {"delay", b.delay}, {"jitter", b.jitter}, {"rate", b.rate}, {"ge", b.gilbertElliott}, {"trace", b.trace}} {
		if b.only != "" && !slices.Contains(strings.Split(b.only, ","), s.name) {
			continue
		}
		if err := s.run(); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.w, "\nBench time %.0f s.\n", time.Since(start).Seconds())
	return nil
}

// emulator is the status of the lab's emulator.
func (b *bench) emulator() (*engine.ProcessStatus, error) {
	out, err := b.nl("status", "--json", b.name)
	if err != nil {
		return nil, err
	}
	var st []engine.LabStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status: %v", err)
	}
	for _, ns := range st[0].Namespaces {
		for _, p := range ns.Processes {
			if p.Emulator != nil {
				return &p, nil
			}
		}
	}
	return nil, fmt.Errorf("no emulator in status")
}

// withPriority starts the lab's emulator again with the scheduling
// priority prio (realtime, high, normal), as a user's environment asks it
// (NETLAB_EMULATE_PRIORITY), and returns what it got.
func (b *bench) withPriority(prio string) (string, error) {
	p, err := b.emulator()
	if err != nil {
		return "", err
	}
	if _, err := b.in("a2", "kill", strconv.Itoa(p.PID)); err != nil {
		return "", err
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := b.nlEnv([]string{"NETLAB_EMULATE_PRIORITY=" + prio}, "up", "-q", b.file); err != nil {
		return "", err
	}
	if p, err = b.emulator(); err != nil {
		return "", err
	}
	return p.Emulator.Priority, nil
}

// cpuTicks are the emulator's user and system clock ticks (its pid is the
// sandbox's when there is one: read there).
func (b *bench) cpuTicks(pid int) (int64, error) {
	out, err := b.in("a2", "cat", fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out[strings.LastIndex(out, ")")+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// iperf runs iperf3 from aN to bN and returns the receiver's bits per
// second (TCP goodput) and the sender's retransmits.
func (b *bench) iperf(n int, secs int, extra ...string) (float64, int, error) {
	srv, cli, dst := fmt.Sprintf("b%d", n), fmt.Sprintf("a%d", n), fmt.Sprintf("10.81.%d.2", n)
	pidfile := fmt.Sprintf("/tmp/netlab-bench-iperf3-%d.pid", os.Getpid())
	if _, err := b.in(srv, "iperf3", "-s", "-1", "-D", "-I", pidfile); err != nil {
		return 0, 0, err
	}
	defer func() {
		if p, err := os.ReadFile(pidfile); err == nil {
			b.in(srv, "kill", strings.TrimSpace(string(p)))
		}
		os.Remove(pidfile)
	}()
	var out string
	var err error
	for try := 0; try < 50; try++ {
		out, err = b.in(cli, append([]string{"iperf3", "-c", dst, "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000"}, extra...)...)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return 0, 0, err
	}
	var res struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		return 0, 0, fmt.Errorf("iperf3: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond, res.End.SumSent.Retransmits, nil
}

// ipRate is the IP-layer rate of a TCP goodput at MTU 1500 with timestamps
// (1448 bytes of payload a 1500-byte packet): what a rate counts.
func ipRate(goodput float64) float64 { return goodput * 1500 / 1448 }

func (b *bench) throughput() error {
	fmt.Fprintf(b.w, "### Throughput, no impairment\n\nTCP, iperf3 -t %d, one stream, MTU 1500, in the same lab: a veth pair and an emulated link (emulator: userspace), the emulator at each scheduling priority (NETLAB_EMULATE_PRIORITY). CPU: the emulator's user and system time over the run.\n\n", b.secs)
	fmt.Fprintf(b.w, "| path | Gb/s | ÷ veth | retransmits | emulator CPUs | CPU per Gb/s |\n|---|---|---|---|---|---|\n")
	veth, _, err := b.iperf(1, b.secs)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.w, "| veth pair | %.2f | | | | |\n", veth/1e9)
	for _, prio := range []string{"realtime", "normal"} {
		got, err := b.withPriority(prio)
		if err != nil {
			return err
		}
		p, err := b.emulator()
		if err != nil {
			return err
		}
		t0, err := b.cpuTicks(p.PID)
		if err != nil {
			return err
		}
		start := time.Now()
		emu, retr, err := b.iperf(2, b.secs)
		if err != nil {
			return err
		}
		el := time.Since(start).Seconds()
		t1, err := b.cpuTicks(p.PID)
		if err != nil {
			return err
		}
		cpu := float64(t1-t0) / 100 / el // CPUs busy
		fmt.Fprintf(b.w, "| emulated link, priority %s | %.2f | **%.2f×** | %d | %.2f | %.3f |\n", got, emu/1e9, emu/veth, retr, cpu, cpu/(emu/1e9))
	}
	_, err = b.withPriority("realtime")
	return err
}

// pings returns n round trips in ms from a2 to b2, sorted: UDP probes an
// echo in b2 sends back, timed to the nanosecond (ping prints 0.1 ms above
// 10 ms and whole ms above 100).
func (b *bench) pings(n int, interval string) ([]float64, error) {
	port := strconv.Itoa(30000 + os.Getpid()%20000)
	args := []string{"exec", b.name, "b2", "--", b.self, "udp", "echo", port}
	if b.sandbox != "" {
		args = append([]string{"--sandbox", b.sandbox}, args...)
	}
	echo := exec.Command(b.netlab, args...)
	if err := echo.Start(); err != nil {
		return nil, err
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := b.in("a2", b.self, "udp", "ping", "10.81.2.2:"+port, strconv.Itoa(n), interval)
	if err != nil {
		return nil, err
	}
	rtt := sortedFloats(out)
	if len(rtt) < n*9/10 {
		return nil, fmt.Errorf("udp ping: %d answers of %d", len(rtt), n)
	}
	return rtt, nil
}

// sortedFloats are the numbers a helper printed, one a line, sorted.
func sortedFloats(out string) []float64 {
	var v []float64
	for _, f := range strings.Fields(out) {
		if x, err := strconv.ParseFloat(f, 64); err == nil {
			v = append(v, x)
		}
	}
	sort.Float64s(v)
	return v
}

// wakeUps measures the machine's timer wake-ups (udp wake) in a2, sorted.
func (b *bench) wakeUps() ([]float64, error) {
	out, err := b.in("a2", b.self, "udp", "wake", "200", "0.02")
	if err != nil {
		return nil, err
	}
	late := sortedFloats(out)
	if len(late) == 0 {
		return nil, fmt.Errorf("udp wake: no measure")
	}
	return late, nil
}

func pct(v []float64, p float64) float64 {
	return v[int(math.Min(float64(len(v)-1), p*float64(len(v))))]
}

func stddev(v []float64) float64 {
	var s, sq float64
	for _, x := range v {
		s += x
		sq += x * x
	}
	m := s / float64(len(v))
	return math.Sqrt(sq/float64(len(v)) - m*m)
}

func (b *bench) delay() error {
	for _, prio := range []string{"realtime", "normal"} {
		if err := b.delayTable(prio); err != nil {
			return err
		}
	}
	_, err := b.withPriority("realtime")
	return err
}

func (b *bench) delayTable(prio string) error {
	got, err := b.withPriority(prio)
	if err != nil {
		return err
	}
	b.pings(5, "0.05") // neighbours resolved
	base, err := b.pings(200, "0.02")
	if err != nil {
		return err
	}
	veth, err := b.in("a1", "ping", "-c", "200", "-i", "0.02", "-q", "10.81.1.2")
	if err != nil {
		return err
	}
	wake, err := b.wakeUps()
	if err != nil {
		return err
	}
	fmt.Fprintf(b.w, "### Delay, emulator priority %s\n\nThe same delay on both ends of the emulated link; 200 UDP probes 20 ms apart, timed to the nanosecond by a prober and an echo that run real-time; round trip without delay (the same link): median %.3f ms, p99 %.3f ms (a veth, ping: %s ms min/avg/max/mdev). The machine's own timer: a real-time thread asleep on a timerfd (as the emulator's scheduler sleeps), 200 wake-ups 20 ms apart, came late by %.3f ms at the median, %.3f ms at p99, %.3f ms at most with nothing else running, and by the last column's while each row's probes ran (in a2, beside the prober); a delayed round trip waits on two such wake-ups of the emulator (one each way) besides the prober's and the echo's, so its p99 can be no better than the machine's. Target: median within ±0.5 ms of twice the delay plus that, p99 within +2 ms. Late: how late the emulator itself let frames go (its own measure).\n\n",
		got, pct(base, 0.5), pct(base, 0.99), strings.TrimSpace(after(veth, "= ")), pct(wake, 0.5), pct(wake, 0.99), wake[len(wake)-1])
	fmt.Fprintf(b.w, "| delay each way | want | median | error | p99 | p99 − want | min | max | emulator late p50 / p99 / max (a→b; b→a) | machine's timer late p99 / max, meanwhile |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range []int{5, 20, 100, 200} {
		for _, end := range []string{"a2/eth0", "b2/eth0"} {
			if err := b.impair(end, "--delay", fmt.Sprintf("%dms", d)); err != nil {
				return err
			}
		}
		b.pings(3, "0.05")
		wc := make(chan []float64, 1)
		go func() { w, _ := b.wakeUps(); wc <- w }() // the machine's timer, meanwhile
		r, err := b.pings(200, "0.02")
		if err != nil {
			return err
		}
		during := "-"
		if w := <-wc; w != nil {
			during = fmt.Sprintf("%.3f / %.3f", pct(w, 0.99), w[len(w)-1])
		}
		want := 2*float64(d) + pct(base, 0.5)
		late := "-"
		if p, err := b.emulator(); err == nil {
			e := p.Emulator
			late = fmt.Sprintf("%v / %v / %v; %v / %v / %v", e.LateAtoB.P50, e.LateAtoB.P99, e.LateAtoB.Max, e.LateBtoA.P50, e.LateBtoA.P99, e.LateBtoA.Max)
		}
		fmt.Fprintf(b.w, "| %d ms | %.3f | %.3f | %+.3f | %.3f | %+.3f | %.3f | %.3f | %s | %s |\n", d, want, pct(r, 0.5), pct(r, 0.5)-want, pct(r, 0.99), pct(r, 0.99)-want, r[0], r[len(r)-1], late, during)
	}
	for _, end := range []string{"a2/eth0", "b2/eth0"} {
		if err := b.impair(end, "--reset"); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) jitter() error {
	fmt.Fprintf(b.w, "\n### Jitter\n\nJitter on one end (what it sends), %d UDP probes far enough apart that no frame waits behind another (jitter without reordering keeps order) and with a delay of at least 4σ (no delay clipped at 0); probes beyond 4σ of the delay (the machine stalling a probe: the model clips its variates at ±4σ, as netem's tables) are left out, and counted. Target: the standard deviation within 10 %% of the distribution's.\n\n", jitterProbes)
	fmt.Fprintf(b.w, "| delay | jitter | distribution | want σ | σ of the round trip | error | median | left out |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		delay, jitter, every string
		dist                 string
		factor               float64
	}{{"20ms", "5ms", "0.05", "normal", 1}, {"50ms", "10ms", "0.09", "normal", 1}, {"20ms", "5ms", "0.05", "uniform", 1 / math.Sqrt(3)}, {"20ms", "5ms", "0.05", "paretonormal", 0}} {
		if err := b.impair("a2/eth0", "--delay", c.delay, "--jitter", c.jitter, "--distribution", c.dist); err != nil {
			return err
		}
		r, err := b.pings(jitterProbes, c.every)
		if err != nil {
			return err
		}
		d, _ := time.ParseDuration(c.delay)
		j, _ := time.ParseDuration(c.jitter)
		factor := c.factor
		if factor == 0 {
			factor = paretoNormalSD
		}
		want := float64(j) / 1e6 * factor
		mid := float64(d) / 1e6
		var kept []float64
		for _, v := range r {
			if math.Abs(v-mid) <= 4*float64(j)/1e6+1 {
				kept = append(kept, v)
			}
		}
		got := stddev(kept)
		fmt.Fprintf(b.w, "| %s | %s | %s | %.3f ms | %.3f ms | %+.1f %% | %.3f ms | %d |\n", c.delay, c.jitter, c.dist, want, got, (got/want-1)*100, pct(r, 0.5), len(r)-len(kept))
	}
	return b.impair("a2/eth0", "--reset")
}

// jitterProbes is how many probes measure a jitter: the standard error of
// a standard deviation from n samples is about 1/sqrt(2n) of it, 3.2 %
// here, so a 10 % target is three of them.
const jitterProbes = 500

// paretoNormalSD is the standard deviation of netem's paretonormal variate
// (linkmodel.StdDevFactor).
var paretoNormalSD = linkmodel.StdDevFactor(linkmodel.ParetoNormal)

func (b *bench) rate() error {
	fmt.Fprintf(b.w, "\n### Rate\n\niperf3 -t %d, TCP (cubic) a2 → b2. The rate counts IP bytes (as Mahimahi does; tbf counts Ethernet frames): the IP rate is the goodput × 1500/1448. Target: within ±5 %%.\n\n", b.secs)
	fmt.Fprintf(b.w, "| rate | delay each way | queue | goodput Mb/s | IP Mb/s | error | retransmits |\n|---|---|---|---|---|---|---|\n")
	for _, c := range []struct {
		rate  float64
		delay int
	}{{10e6, 0}, {100e6, 0}, {10e6, 20}, {100e6, 20}} {
		flags := []string{"--rate", topology.FormatRate(uint64(c.rate)), "--limit", "0"}
		queue := "default (50 ms + bucket)"
		if c.delay > 0 {
			bdp := int(c.rate / 8 * float64(2*c.delay) / 1000)
			flags = []string{"--rate", topology.FormatRate(uint64(c.rate)), "--delay", fmt.Sprintf("%dms", c.delay), "--limit", strconv.Itoa(bdp) + "b"}
			queue = fmt.Sprintf("BDP, %d bytes", bdp)
			if err := b.impair("b2/eth0", "--delay", fmt.Sprintf("%dms", c.delay)); err != nil {
				return err
			}
		}
		if err := b.impair("a2/eth0", flags...); err != nil {
			return err
		}
		g, retr, err := b.iperf(2, b.secs, "-O", "2")
		if err != nil {
			return err
		}
		ip := ipRate(g)
		fmt.Fprintf(b.w, "| %s | %d ms | %s | %.2f | %.2f | %+.1f %% | %d |\n", topology.FormatRate(uint64(c.rate)), c.delay, queue, g/1e6, ip/1e6, (ip/c.rate-1)*100, retr)
	}
	b.impair("b2/eth0", "--reset")
	return b.impair("a2/eth0", "--reset")
}

func (b *bench) gilbertElliott() error {
	fmt.Fprintf(b.w, "\n### Gilbert-Elliott\n\n20,000 numbered UDP datagrams a2 → b2 (64 bytes, 10 a millisecond), lost ones counted by their numbers; bursts are runs of consecutive numbers missing. Target: within 10 %% of the model's.\n\n")
	fmt.Fprintf(b.w, "| p, r, loss in bad, in good | loss (model) | loss measured | error | mean burst (model) | measured | error |\n|---|---|---|---|---|---|---|\n")
	for _, g := range []topology.GilbertElliott{{P: 1, R: 25, LossBad: 100}, {P: 10, R: 50, LossBad: 100}, {P: 2, R: 20, LossBad: 80, LossGood: 0.5}} {
		spec := fmt.Sprintf("%g%%,%g%%,%g%%,%g%%", g.P, g.R, g.LossBad, g.LossGood)
		if err := b.impair("a2/eth0", "--gilbert-elliott", spec); err != nil {
			return err
		}
		got, err := b.udp(20000, 64, 10, 0)
		if err != nil {
			return err
		}
		lost, runs := 0, 0
		for i := range got.seen {
			if !got.seen[i] {
				lost++
				if i == 0 || got.seen[i-1] {
					runs++
				}
			}
		}
		rate, burst := float64(lost)/float64(len(got.seen)), float64(lost)/float64(max(runs, 1))
		mr, mb := geLoss(g), geBurst(g)
		fmt.Fprintf(b.w, "| %s | %.2f %% | %.2f %% | %+.1f %% | %.2f | %.2f | %+.1f %% |\n", spec, mr*100, rate*100, (rate/mr-1)*100, mb, burst, (burst/mb-1)*100)
	}
	return b.impair("a2/eth0", "--reset")
}

// geLoss and geBurst are the model's (internal/linkmodel's formulas).
func geLoss(g topology.GilbertElliott) float64 {
	p, r := g.P/100, g.R/100
	bad := p / (p + r)
	return bad*g.LossBad/100 + (1-bad)*g.LossGood/100
}

func geBurst(g topology.GilbertElliott) float64 {
	p, r, lb, lg := g.P/100, g.R/100, g.LossBad/100, g.LossGood/100
	pb := p / (p + r)
	pg := 1 - pb
	starts := pg*(1-lg)*((1-p)*lg+p*lb) + pb*(1-lb)*(r*lg+(1-r)*lb)
	return (pb*lb + pg*lg) / starts
}

func (b *bench) trace() error {
	fmt.Fprintf(b.w, "\n### Trace replay\n\nA UDP flood a2 → b2 above the trace's capacity (1472-byte payloads: 1500-byte IP packets), queue 200 packets; the IP bytes received in each 1-s window of the trace (from the trace's own start, which the emulator reports) against what the trace offers in it (its entries × 1500 bytes). Target: within ±10 %% in each window.\n\n")
	for _, c := range []struct {
		file  string
		flood float64 // Mb/s
		secs  int
	}{{"stepped.trace", 36, 12}, {"cellular-down.trace", 45, 15}} {
		path, _ := filepath.Abs(filepath.Join(b.traces, c.file))
		tr, err := topology.LoadTrace(path)
		if err != nil {
			return err
		}
		if err := b.impair("a2/eth0", "--trace", path, "--limit", "200"); err != nil {
			return err
		}
		p, err := b.emulator()
		if err != nil {
			return err
		}
		epoch := p.Emulator.TraceAtoB
		pps := int(c.flood * 1e6 / 8 / 1500)
		got, err := b.udp(pps*c.secs, 1472, pps/1000, 0)
		if err != nil {
			return err
		}
		period := time.Duration(tr.MS[len(tr.MS)-1]) * time.Millisecond
		offer := func(from time.Duration) float64 { // bytes in [from, from+1s) of the trace
			n := 0
			for loop := time.Duration(0); loop <= from+time.Second; loop += period {
				for _, ms := range tr.MS {
					t := loop + time.Duration(ms)*time.Millisecond
					if t > from && t <= from+time.Second {
						n++
					}
				}
			}
			return float64(n) * 1500
		}
		fmt.Fprintf(b.w, "**%s** (flood %.0f Mb/s for %d s):\n\n| window (s of the trace) | offered Mb/s | received Mb/s | error |\n|---|---|---|---|\n", c.file, c.flood, c.secs)
		bins := map[int]float64{}
		for _, a := range got.arrivals {
			bins[int(a.t.Sub(epoch)/time.Second)] += float64(a.bytes)
		}
		first := int(got.start.Sub(epoch)/time.Second) + 2 // the flood and the queue settled
		last := int(got.end.Sub(epoch)/time.Second) - 1
		worst := 0.0
		for k := first; k < last; k++ {
			o := offer(time.Duration(k) * time.Second)
			r := bins[k]
			e := 0.0
			if o > 0 {
				e = (r/o - 1) * 100
			}
			worst = math.Max(worst, math.Abs(e))
			fmt.Fprintf(b.w, "| %d–%d | %.2f | %.2f | %+.1f %% |\n", k, k+1, o*8/1e6, r*8/1e6, e)
		}
		fmt.Fprintf(b.w, "\nLargest error: %.1f %%.\n\n", worst)
	}
	return b.impair("a2/eth0", "--reset")
}

// udpResult is what the receiver got.
type udpResult struct {
	seen       []bool
	arrivals   []arrival
	start, end time.Time
}

type arrival struct {
	t     time.Time
	bytes int // IP bytes
}

// udp sends n numbered datagrams of size bytes from a2 to b2, batch a
// millisecond, through helpers run in the namespaces (this binary, udp
// send/recv), and returns what arrived.
func (b *bench) udp(n, size, batch int, _ int) (*udpResult, error) {
	port := 20000 + os.Getpid()%20000
	out := filepath.Join(os.TempDir(), fmt.Sprintf("netlab-bench-udp-%d", os.Getpid()))
	defer os.Remove(out)
	args := []string{"exec", b.name, "b2", "--", b.self, "udp", "recv", strconv.Itoa(port), strconv.Itoa(n), out}
	if b.sandbox != "" {
		args = append([]string{"--sandbox", b.sandbox}, args...)
	}
	recv := exec.Command(b.netlab, args...)
	var rerr bytes.Buffer
	recv.Stderr = &rerr
	if err := recv.Start(); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := b.in("a2", b.self, "udp", "send", fmt.Sprintf("10.81.2.2:%d", port), strconv.Itoa(n), strconv.Itoa(size), strconv.Itoa(max(batch, 1))); err != nil {
		recv.Process.Kill()
		recv.Wait()
		return nil, err
	}
	end := time.Now()
	if err := recv.Wait(); err != nil {
		return nil, fmt.Errorf("udp recv: %v: %s", err, rerr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	res := &udpResult{seen: make([]bool, n), start: start, end: end}
	for i := 0; i+12 <= len(data); i += 12 {
		seq := binary.LittleEndian.Uint32(data[i:])
		ns := int64(binary.LittleEndian.Uint64(data[i+4:]))
		if int(seq) < n {
			res.seen[seq] = true
		}
		res.arrivals = append(res.arrivals, arrival{t: time.Unix(0, ns), bytes: size + 28})
	}
	return res, nil
}

// udpHelper is `emulator udp send ADDR N SIZE BATCH` (N datagrams, BATCH a
// millisecond) or `emulator udp recv PORT N FILE` (until 2 s of silence:
// each datagram's number and arrival time, 12 bytes each, into FILE).
func udpHelper(args []string) int {
	// The probes run ahead of the machine's other work where root may ask
	// it: what is measured is the link, not their wait for a CPU.
	realtime()
	switch {
	case len(args) == 5 && args[0] == "send":
		n, _ := strconv.Atoi(args[2])
		size, _ := strconv.Atoi(args[3])
		batch, _ := strconv.Atoi(args[4])
		c, err := net.Dial("udp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		msg := make([]byte, size)
		next := time.Now()
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			c.Write(msg)
			if (i+1)%batch == 0 {
				next = next.Add(time.Millisecond)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
		}
		return 0
	case len(args) == 2 && args[0] == "echo":
		pc, err := net.ListenPacket("udp", ":"+args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return 1
			}
			pc.WriteTo(buf[:k], from)
		}
	case len(args) == 4 && args[0] == "ping":
		n, _ := strconv.Atoi(args[2])
		every, err := time.ParseDuration(args[3] + "s")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		c, err := net.Dial("udp", args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		sent := make([]atomic.Int64, n) // UnixNano, read by the receiver
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64)
			for got := 0; got < n; got++ {
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				k, err := c.Read(buf)
				if err != nil {
					return
				}
				if k >= 4 {
					at := time.Now()
					if i := int(binary.BigEndian.Uint32(buf)); i < n {
						fmt.Printf("%.4f\n", float64(at.UnixNano()-sent[i].Load())/1e6)
					}
				}
			}
		}()
		msg := make([]byte, 56)
		start := time.Now()
		for i := range n {
			binary.BigEndian.PutUint32(msg, uint32(i))
			time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
			sent[i].Store(time.Now().UnixNano())
			c.Write(msg)
		}
		<-done
		return 0
	case len(args) == 4 && args[0] == "recv":
		n, _ := strconv.Atoi(args[2])
		pc, err := net.ListenPacket("udp", ":"+args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pc.(*net.UDPConn).SetReadBuffer(8 << 20)
		var out bytes.Buffer
		buf := make([]byte, 65536)
		got := 0
		deadline := 20 * time.Second // until the first
		for got < n {
			pc.SetReadDeadline(time.Now().Add(deadline))
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			deadline = 2 * time.Second
			if k < 4 {
				continue
			}
			var rec [12]byte
			binary.LittleEndian.PutUint32(rec[:], binary.BigEndian.Uint32(buf))
			binary.LittleEndian.PutUint64(rec[4:], uint64(time.Now().UnixNano()))
			out.Write(rec[:])
			got++
		}
		if err := os.WriteFile(args[3], out.Bytes(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	if len(args) == 3 && args[0] == "wake" {
		n, _ := strconv.Atoi(args[1])
		every, err := time.ParseDuration(args[2] + "s")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		return wakeUps(n, every)
	}
	fmt.Fprintln(os.Stderr, "usage: emulator udp send ADDR N SIZE BATCH | udp recv PORT N FILE | udp echo PORT | udp ping ADDR N INTERVAL-S | udp wake N INTERVAL-S")
	return 2
}

// wakeUps prints how late (ms) each of n wake-ups every apart came: a
// thread of its own, real-time, asleep on a timerfd armed for an absolute
// time, as the emulator's scheduler sleeps (cyclictest's measure). No
// userspace program that sleeps until a frame is due can send it sooner
// after its time than this machine wakes it.
func wakeUps(n int, every time.Duration) int {
	runtime.LockOSThread()
	realtime()
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	at := ts.Nano()
	var b [8]byte
	for range n {
		at += every.Nanoseconds()
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(at)}
		if err := unix.TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := unix.Read(fd, b[:]); err != nil && !errors.Is(err, unix.EINTR) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		fmt.Printf("%.4f\n", float64(ts.Nano()-at)/1e6)
	}
	return 0
}

// realtime puts every thread of this process (and so those it starts) in
// SCHED_FIFO at priority 1, where it may.
func realtime() {
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0)
		}
	}
}

func after(s, marker string) string {
	if i := strings.Index(s, marker); i >= 0 {
		return s[i+len(marker):]
	}
	return s
}

func machine() string {
	out, _ := exec.Command("uname", "-r").Output()
	n := strings.Count(string(must(os.ReadFile("/proc/cpuinfo"))), "processor\t:")
	return fmt.Sprintf("%d vCPUs, kernel %s", n, strings.TrimSpace(string(out)))
}

func must(b []byte, _ error) []byte { return b }
