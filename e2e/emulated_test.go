package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
	"github.com/netlab-dev/netlab/internal/emulator"
	"github.com/netlab-dev/netlab/internal/engine"
)

// Links carried by netlab's userspace emulator (netlab emulate between two
// TAPs), on every kernel: emulator: userspace asks for it whatever the
// kernel has. Delay and jitter by ping and by a TCP handshake, a rate with
// a delay by iperf3, loss and Gilbert-Elliott counted on a UDP stream with
// sequence numbers, reordering and duplicates in a capture, a trace
// replayed, a change with frames queued, the emulator killed and brought
// back by up, net/http through the fixture. Bounds are lower bounds (the
// model holds a frame at least that long, less the 0.15 ms at most the
// emulator lets one go early; load only adds) or wide ones: the precise
// figures are bench/'s.

const emuLab = `name: emu
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.73.0.1/24, fd00:73::1/64], impair: {emulator: userspace}}
  b:
    interfaces:
      eth0: {addresses: [10.73.0.2/24, fd00:73::2/64]}
`

// emuUp brings emuLab up through the fixture.
func emuUp(t *testing.T) *netlabtest.Lab {
	t.Helper()
	requireRoot(t)
	return netlabtest.Up(t, writeFile(t, t.TempDir(), "emu.yaml", emuLab))
}

// rtts pings n times from ns (interval 20 ms) and returns the round trips
// in ms, sorted.
func rtts(t *testing.T, ns, addr string, n int) []float64 {
	t.Helper()
	r := inNS(t, ns, "ping", "-c", strconv.Itoa(n), "-i", "0.02", "-W", "2", addr)
	if r.code != 0 {
		t.Fatalf("ping %s from %s:\n%s", addr, ns, r.out)
	}
	var out []float64
	for _, line := range strings.Split(r.out, "\n") {
		if i := strings.Index(line, "time="); i >= 0 {
			v, err := strconv.ParseFloat(strings.Fields(line[i+5:])[0], 64)
			if err == nil {
				out = append(out, v)
			}
		}
	}
	if len(out) != n {
		t.Fatalf("ping: %d replies of %d:\n%s", len(out), n, r.out)
	}
	sort.Float64s(out)
	return out
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

// handshake is the time a TCP connect from a to b takes, the least of n.
func handshake(t *testing.T, lab *netlabtest.Lab, addr string, n int) time.Duration {
	t.Helper()
	best := time.Hour
	for range n {
		start := time.Now()
		c, err := lab.Dial("a", "tcp", addr, 5*time.Second)
		d := time.Since(start)
		if err != nil {
			t.Fatalf("connect %s: %v", addr, err)
		}
		c.Close()
		best = min(best, d)
	}
	return best
}

// TestEmulatedDelayJitter: a delay of 20 ms on a's side and 10 ms on b's
// raises the round trip by 30 ms at least (ping and a TCP handshake, IPv4
// and IPv6), never more than twice that at its least; jitter (normal, 5 ms)
// spreads it; a net/http client over the link reports the round trips it
// pays per request.
func TestEmulatedDelayJitter(t *testing.T) {
	lab := emuUp(t)
	b4, b6 := "10.73.0.2", "fd00:73::2"
	ln, err := lab.Listen("b", "tcp", "[::]:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return lab.Dial("a", network, addr, 5*time.Second)
		}}}
	get := func() time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			resp, err := client.Get("http://" + b4 + ":8080/")
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			best = min(best, time.Since(start))
		}
		return best
	}
	plain, plainHS, plainGet := rtts(t, lab.NS("a"), b4, 10)[0], handshake(t, lab, b4+":8080", 5), get()

	lab.Impair(t, "a", "eth0", netlabtest.Delay(20*time.Millisecond))
	lab.Impair(t, "b", "eth0", netlabtest.Delay(10*time.Millisecond))
	for _, addr := range []string{b4, b6} {
		r := rtts(t, lab.NS("a"), addr, 20)
		t.Logf("ping %s: least %.2f ms, median %.2f ms (plain %.2f)", addr, r[0], r[10], plain)
		if r[0] < 29.7 || r[0] > 60+plain {
			t.Errorf("ping %s through 20 ms + 10 ms: least round trip %.2f ms, want 29.7..%.0f", addr, r[0], 60+plain)
		}
	}
	hs := handshake(t, lab, "["+b6+"]:8080", 5)
	t.Logf("TCP handshake: %v (plain %v)", hs, plainHS)
	if hs < 29700*time.Microsecond {
		t.Errorf("TCP handshake through 20 ms + 10 ms took %v", hs)
	}
	// Two round trips of 30 ms, the handshake and the request; checked on
	// the GET's own time (a frame may leave up to 0.15 ms early each way),
	// not on its difference with the plain link's, whose own cost differs
	// from the emulated path's by more than that margin.
	g := get()
	t.Logf("net/http GET on a new connection: %v, %v more than on the plain link (2 round trips of 30 ms: the handshake and the request)", g, g-plainGet)
	if g < 59400*time.Microsecond {
		t.Errorf("net/http GET took %v, want 2 round trips of 30 ms at least", g)
	}

	lab.Impair(t, "a", "eth0", netlabtest.Jitter(5*time.Millisecond), netlabtest.Distribution("normal"))
	r := rtts(t, lab.NS("a"), b4, 60)
	t.Logf("jitter 5 ms (normal): round trips %.2f..%.2f ms, standard deviation %.2f ms", r[0], r[len(r)-1], stddev(r))
	if sd := stddev(r); sd < 2 {
		t.Errorf("jitter 5 ms: standard deviation %.2f ms", sd)
	}
	if st := mustNetlab(t, "status", lab.Name()); !strings.Contains(st, "delay 20ms jitter 5ms distribution normal") || !strings.Contains(st, "netlab emulate on "+lab.NS("a")+"/eth0") {
		t.Errorf("status:\n%s", st)
	}
}

// udpStream sends n datagrams numbered 0..n-1 from a to b (1 ms per 10) and
// returns the numbers b received, in order of arrival.
func udpStream(t *testing.T, lab *netlabtest.Lab, n, size int) []uint32 {
	t.Helper()
	pc, err := lab.ListenPacket("b", "udp", "10.73.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	c, err := lab.Dial("a", "udp", pc.LocalAddr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []uint32
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			pc.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if k >= 4 {
				got = append(got, binary.BigEndian.Uint32(buf))
			}
		}
	})
	msg := make([]byte, size)
	for i := range n {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	return got
}

// losses are the share of n lost and the mean length of the runs of
// consecutive numbers missing.
func losses(got []uint32, n int) (rate, burst float64) {
	seen := make([]bool, n)
	for _, s := range got {
		if int(s) < n {
			seen[s] = true
		}
	}
	lost, runs := 0, 0
	for i, ok := range seen {
		if !ok {
			lost++
			if i == 0 || seen[i-1] {
				runs++
			}
		}
	}
	if runs == 0 {
		return 0, 0
	}
	return float64(lost) / float64(n), float64(lost) / float64(runs)
}

// emulatorStats are the counters of the lab's one emulator.
func emulatorStats(t *testing.T, lab *netlabtest.Lab) *engine.EmulatorStatus {
	t.Helper()
	st, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.Namespaces {
		for _, p := range ns.Processes {
			if p.Emulator != nil {
				return p.Emulator
			}
		}
	}
	t.Fatalf("no emulator in status")
	return nil
}

// TestEmulatedRateLossGE: a 10 Mb/s rate with 10 ms of delay each way and
// a bandwidth-delay-product queue carries TCP at about 10 Mb/s (IP bytes);
// random loss and Gilbert-Elliott losses counted on numbered UDP
// datagrams are the model's (the emulator's own counter agrees: nothing
// else dropped one).
func TestEmulatedRateLossGE(t *testing.T) {
	lab := emuUp(t)
	a, b := lab.NS("a"), lab.NS("b")
	bdp := int(10e6 / 8 * 0.020) // 20 ms of round trip at 10 Mb/s
	lab.Impair(t, "a", "eth0", netlabtest.Rate(10e6), netlabtest.Delay(10*time.Millisecond), netlabtest.LimitBytes(bdp))
	lab.Impair(t, "b", "eth0", netlabtest.Delay(10*time.Millisecond))
	got := iperf(t, b, a, "10.73.0.2", 4, 1) * 1500 / 1448 // IP bytes: the rate counts them
	t.Logf("rate 10mbit, delay 10 ms each way, queue %d bytes: %.2f Mb/s of IP", bdp, got/1e6)
	if !within(got, 10e6, 0.15) {
		t.Errorf("rate 10mbit with delay: %.2f Mb/s", got/1e6)
	}

	lab.Impair(t, "a", "eth0", netlabtest.NoImpair(), netlabtest.Emulator("userspace"), netlabtest.Loss(10))
	lab.Impair(t, "b", "eth0", netlabtest.NoImpair())
	before := emulatorStats(t, lab).AtoB
	const n = 5000
	recv := udpStream(t, lab, n, 64)
	rate, _ := losses(recv, n)
	after := emulatorStats(t, lab).AtoB
	t.Logf("loss 10%%: %.2f %% of %d lost", rate*100, n)
	if math.Abs(rate-0.10) > 0.02 {
		t.Errorf("loss 10%%: %.2f %% lost", rate*100)
	}
	// Frames of the kernel's own (neighbour discovery) may cross too.
	in, lost, missing := after.In-before.In, after.Lost-before.Lost, uint64(n-len(recv))
	if in < n || lost < missing || lost-missing > in-n {
		t.Errorf("the emulator saw %d frames and lost %d; %d datagrams sent, %d received", in, lost, n, len(recv))
	}

	// p 2 %, r 25 %: 7.4 % lost in bursts of 4 on average.
	lab.Impair(t, "a", "eth0", netlabtest.GilbertElliott(2, 25, 100, 0))
	const m = 20000
	recv = udpStream(t, lab, m, 64)
	rate, burst := losses(recv, m)
	want := 0.02 / (0.02 + 0.25)
	t.Logf("Gilbert-Elliott p 2%% r 25%%: %.2f %% lost (model %.2f %%), mean burst %.2f (model 4)", rate*100, want*100, burst)
	if math.Abs(rate-want) > 0.3*want || burst < 3 || burst > 5.5 {
		t.Errorf("Gilbert-Elliott: %.2f %% lost in bursts of %.2f, want %.2f %% in bursts of 4", rate*100, burst, want*100)
	}
}

// TestEmulatedReorderDuplicate: with reorder and duplicate asked, a capture
// on the receiving end sees numbered datagrams out of order, and some
// twice; without them, in order and once.
func TestEmulatedReorderDuplicate(t *testing.T) {
	lab := emuUp(t)
	order := func() (dups, inversions, total int) {
		c := lab.Capture(t, "b", "eth0", netlabtest.CaptureFilter("udp and dst host 10.73.0.2"))
		udpStream(t, lab, 300, 32)
		c.Stop()
		count := map[uint32]int{}
		last := -1
		for _, p := range c.Packets() {
			u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok || len(u.Payload) < 4 || p.Outgoing {
				continue
			}
			s := binary.BigEndian.Uint32(u.Payload)
			count[s]++
			total++
			if int(s) < last {
				inversions++
			}
			last = max(last, int(s))
		}
		for _, c := range count {
			if c > 1 {
				dups++
			}
		}
		return dups, inversions, total
	}
	// Neighbours resolved first: datagrams sent while a's neighbour entry
	// for b is incomplete wait in the kernel's queue, and one sent as the
	// answer arrives can overtake them (0, 3, 1, 2 once, on a busy machine).
	lab.Ping(t, "a", "b")
	d, inv, n := order()
	if d != 0 || inv != 0 || n != 300 {
		t.Errorf("plain: %d duplicated, %d out of order, %d captured of 300", d, inv, n)
	}
	lab.Impair(t, "a", "eth0", netlabtest.Delay(10*time.Millisecond), netlabtest.Reorder(30), netlabtest.Duplicate(20))
	d, inv, n = order()
	t.Logf("reorder 30%% duplicate 20%%: %d of 300 duplicated, %d arrived after a later one, %d captured", d, inv, n)
	if d == 0 || inv == 0 || n <= 300 {
		t.Errorf("reorder and duplicate: %d duplicated, %d out of order, %d captured", d, inv, n)
	}
}

// TestEmulatedTrace: a trace of one 1500-byte packet a millisecond (12
// Mb/s) carries TCP at about that; a stepped one at what each step offers.
func TestEmulatedTrace(t *testing.T) {
	lab := emuUp(t)
	a, b := lab.NS("a"), lab.NS("b")
	steady := filepath.Join(t.TempDir(), "steady.trace")
	var lines []string
	for i := 1; i <= 1000; i++ {
		lines = append(lines, strconv.Itoa(i))
	}
	if err := os.WriteFile(steady, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Impair(t, "a", "eth0", netlabtest.Trace(steady))
	got := iperf(t, b, a, "10.73.0.2", 4, 1) * 1500 / 1448
	t.Logf("trace of 1 packet/ms: %.2f Mb/s of IP (the trace offers 12)", got/1e6)
	if !within(got, 12e6, 0.15) {
		t.Errorf("trace of 12 Mb/s: %.2f Mb/s", got/1e6)
	}
	if st := mustNetlab(t, "status", lab.Name()); !strings.Contains(st, "trace "+steady) {
		t.Errorf("status does not name the trace:\n%s", st)
	}
}

// TestEmulatedChangeWithQueue: 100 datagrams queued behind a 500 kb/s rate;
// the rate raised to 100 Mb/s while they wait: every one arrives, once, in
// order, and the emulator lost or dropped none.
func TestEmulatedChangeWithQueue(t *testing.T) {
	lab := emuUp(t)
	lab.Ping(t, "a", "b") // neighbours resolved: the datagrams go straight to the link
	lab.Impair(t, "a", "eth0", netlabtest.Rate(500e3), netlabtest.Limit(200))
	pc, err := lab.ListenPacket("b", "udp", "10.73.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := lab.Dial("a", "udp", pc.LocalAddr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 1000)
	for i := range 100 {
		binary.BigEndian.PutUint32(msg, uint32(i))
		c.Write(msg) // 1.6 s of the link's time, sent at once
	}
	lab.Impair(t, "a", "eth0", netlabtest.Rate(100e6))
	// What the emulator held when it took the new model.
	queued := emulatorStats(t, lab).KeptAtoB
	var got []uint32
	buf := make([]byte, 2000)
	for len(got) < 100 {
		pc.SetReadDeadline(time.Now().Add(3 * time.Second))
		k, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if k >= 4 {
			got = append(got, binary.BigEndian.Uint32(buf))
		}
	}
	time.Sleep(emulator.StateInterval + 200*time.Millisecond) // its counters since
	st := emulatorStats(t, lab).AtoB
	t.Logf("%d queued when the rate changed; %d of 100 arrived; emulator: %+v", queued, len(got), st)
	if queued == 0 {
		t.Error("nothing was queued when the rate changed: the test proved nothing")
	}
	want := make([]uint32, 100)
	for i := range want {
		want[i] = uint32(i)
	}
	if !slices.Equal(got, want) || st.Lost != 0 || st.Dropped != 0 || st.Overflow != 0 {
		t.Errorf("after the change: got %v, emulator lost %d dropped %d", got, st.Lost, st.Dropped+st.Overflow)
	}
}

// TestEmulatorKillUpDown: an emulator killed leaves its link without
// carrier and status with drift; up starts it again with the same model;
// down leaves the host as it was.
func TestEmulatorKillUpDown(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	t.Cleanup(func() { sameHost(t, before) })
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "emu.yaml", strings.Replace(emuLab, "{emulator: userspace}", "{emulator: userspace, delay: 15ms}", 1))
	labUp(t, file, p, "emu")
	lab, a := p+"emu", p+"a"
	if r := rtts(t, a, "10.73.0.2", 3); r[0] < 14.8 {
		t.Fatalf("delay 15 ms: %.2f ms", r[0])
	}
	var st []engine.LabStatus
	if err := json.Unmarshal([]byte(mustNetlab(t, "status", "--json", lab)), &st); err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, ns := range st[0].Namespaces {
		for _, pr := range ns.Processes {
			if pr.Program == "emulate" {
				pid = pr.PID
			}
		}
	}
	if pid == 0 {
		t.Fatalf("no emulator in status:\n%+v", st)
	}
	sh(t, "kill", "-9", strconv.Itoa(pid))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(sh(t, "ip", "-n", a, "link", "show", "eth0"), "NO-CARRIER") {
		if time.Now().After(deadline) {
			t.Fatalf("eth0 keeps its carrier with the emulator dead:\n%s", sh(t, "ip", "-n", a, "link", "show", "eth0"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := mustNetlab(t, "status", lab); !strings.Contains(s, "netlab emulate --ns "+a+" --dev eth0") {
		t.Errorf("status does not plan the emulator again:\n%s", s)
	}
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "netlab emulate") || !strings.Contains(out, "(1 actions)") {
		t.Errorf("up after the kill:\n%s", out)
	}
	if r := rtts(t, a, "10.73.0.2", 3); r[0] < 14.8 {
		t.Errorf("after up, delay 15 ms: %.2f ms", r[0])
	}
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("second up:\n%s", out)
	}
	mustNetlab(t, "down", lab)
	sameHost(t, before) // its processes included: no netlab emulate left
}

// TestEmulatedCable: a cable pulled on an emulated link looks as on a veth
// pair: the end named stays up with no carrier (its peer TAP set down, the
// emulator following), nothing crosses; plugged back, the delay is there
// again.
func TestEmulatedCable(t *testing.T) {
	lab := emuUp(t)
	lab.Impair(t, "a", "eth0", netlabtest.Delay(5*time.Millisecond))
	a := lab.NS("a")
	lab.Ping(t, "a", "b")
	t.Run("pulled", func(t *testing.T) {
		lab.LinkDown(t, "a", "eth0")
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := sh(t, "ip", "-n", a, "link", "show", "eth0")
			if strings.Contains(out, "NO-CARRIER") && strings.Contains(out, ",UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a/eth0 with its cable pulled:\n%s", out)
			}
			time.Sleep(20 * time.Millisecond)
		}
		noPing(t, a, "10.73.0.2")
	})
	lab.Ping(t, "a", "b") // the carrier back
	if r := rtts(t, a, "10.73.0.2", 3); r[0] < 4.8 {
		t.Errorf("plugged back, delay 5 ms: %.2f ms", r[0])
	}
}

// TestEmulatedTimeline: a timeline of the file whose impair event needs the
// emulator has the link emulated from up on, so the event is a new model
// in place: the TAP is the one up made, and the delay is there.
func TestEmulatedTimeline(t *testing.T) {
	requireRoot(t)
	lab := netlabtest.Up(t, writeFile(t, t.TempDir(), "emutl.yaml", `name: emutl
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.74.0.1/24]}
  b:
    interfaces:
      eth0: {addresses: [10.74.0.2/24]}
timelines:
  slow:
    events:
      - {at: 0, impair: {a/eth0: {delay: 10ms, emulator: userspace}}}
`))
	a := lab.NS("a")
	link := func() string { return sh(t, "ip", "-d", "-n", a, "-o", "link", "show", "eth0") }
	before := link()
	if !strings.Contains(before, "tun type tap") {
		t.Fatalf("a/eth0 before the timeline, not a TAP:\n%s", before)
	}
	if r := rtts(t, a, "10.74.0.2", 3); r[0] >= 9.8 {
		t.Errorf("before the timeline: %.2f ms", r[0])
	}
	lab.StartTimeline(t, "slow").Wait(t, 30*time.Second)
	if r := rtts(t, a, "10.74.0.2", 3); r[0] < 9.8 {
		t.Errorf("after the event, delay 10 ms: %.2f ms", r[0])
	}
	if after := link(); strings.Fields(after)[0] != strings.Fields(before)[0] {
		t.Errorf("a/eth0 made again by the event:\n%s\n%s", before, after)
	}
}
