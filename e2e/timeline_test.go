package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
	"github.com/netlab-dev/netlab/internal/observe"
	"github.com/netlab-dev/netlab/internal/timeline"
	"github.com/netlab-dev/netlab/topology"
)

// flapLab: a veth pair, its sending end shaped to 40 Mbit/s so that a
// transfer of a few megabytes lasts seconds.
const flapLab = `name: flap
namespaces:
  a: {interfaces: {eth0: {peer: b/eth0, addresses: [10.96.0.1/30], impair: {rate: 40mbit}}}}
  b: {interfaces: {eth0: {addresses: [10.96.0.2/30]}}}
`

// carrierChanges reads the kernel's count of carrier changes of an
// interface, in its namespace's own sysfs (the view's).
func carrierChanges(t *testing.T, lab *netlabtest.Lab, ns, iface string) int {
	t.Helper()
	out := strings.TrimSpace(lab.Exec(t, ns, "cat", "/sys/class/net/"+iface+"/carrier_changes"))
	n, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("carrier_changes of %s/%s: %q", ns, iface, out)
	}
	return n
}

// A link that flaps under a long TCP transfer: the transfer completes with
// every byte, the interface whose cable flaps counts a carrier change for
// each pull and each plug, and the flaps happened while the data flowed.
func TestFlapUnderTransfer(t *testing.T) {
	t.Parallel()
	lab := netlabtest.UpString(t, flapLab)
	const size = 8 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	ln, err := lab.Listen("b", "tcp", "10.96.0.2:5001")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type got struct {
		n   int64
		sum [32]byte
		err error
	}
	recv := make(chan got, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recv <- got{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var g got
		g.n, g.err = n, err
		copy(g.sum[:], h.Sum(nil))
		recv <- g
	}()
	before := carrierChanges(t, lab, "a", "eth0")
	c, err := lab.Dial("a", "tcp", "10.96.0.2:5001", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const flaps, period, down = 5, 400 * time.Millisecond, 150 * time.Millisecond
	flap := lab.Flap(t, "a", "eth0", period, down, flaps)
	c.SetDeadline(time.Now().Add(90 * time.Second))
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	g := <-recv
	end := time.Now()
	c.Close()
	if g.err != nil || g.n != size || g.sum != want {
		t.Fatalf("transfer: %d of %d bytes, intact %v, error %v", g.n, size, g.sum == want, g.err)
	}
	flap.Wait(t, 30*time.Second)
	changes := carrierChanges(t, lab, "a", "eth0") - before
	// Each pull and each plug the runner carried out is a carrier change;
	// on a loaded machine a runner behind skips a pull whose plugging back
	// is due at once (the log says so), so count from the log.
	var during, applied int
	for _, e := range flap.Log(t) {
		if e.Result == timeline.Done {
			applied++
		}
		if e.Action == "link-down a/eth0" && e.Result == timeline.Done && e.Finished.After(start) && e.Finished.Before(end) {
			during++
		}
	}
	t.Logf("8 MiB in %s at 40 Mbit/s (%.1f s unflapped) under %d flaps (%d pulls while it ran); carrier changes of a/eth0: %d for %d steps carried out",
		end.Sub(start).Round(time.Millisecond), float64(size*8)/40e6, flaps, during, changes, applied)
	if changes != applied {
		t.Errorf("a/eth0 counted %d carrier changes, want %d: one for each pull and each plug", changes, applied)
	}
	if during < 1 {
		t.Errorf("no pull while the transfer ran: the test proves nothing")
	}
	if !lab.Carrier(t, "a", "eth0") {
		t.Errorf("a/eth0 has no carrier after the flaps")
	}
}

// scheduleLab: four namespaces on a Linux bridge, without addresses in the
// host.
const scheduleLab = `name: sched
bridges:
  sw: {type: linux}
namespaces:
  n1: {interfaces: {eth0: {peer: sw/p1, addresses: [10.97.0.1/24, fd00:97::1/64]}}}
  n2: {interfaces: {eth0: {peer: sw/p2, addresses: [10.97.0.2/24, fd00:97::2/64]}}}
  n3: {interfaces: {eth0: {peer: sw/p3, addresses: [10.97.0.3/24, fd00:97::3/64]}}}
  n4: {interfaces: {eth0: {peer: sw/p4, addresses: [10.97.0.4/24, fd00:97::4/64]}}}
timelines:
  blip: [{link-down: n2/eth0, for: 50ms}]
`

// spread is min, median, 95th percentile and max of durations.
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))] }
	r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	return fmt.Sprintf("min %s, median %s, p95 %s, max %s", r(s[0]), r(at(0.5)), r(at(0.95)), r(s[len(s)-1]))
}

// A timeline's event log against its schedule: every step once, in order,
// planned at the timeline's start plus its time, none failed; the lab ends
// in the state the schedule intends. The spread of the actual times around
// the planned ones is measured and logged (never asserted: the machine is
// shared and noisy).
func TestTimelineSchedule(t *testing.T) {
	t.Parallel()
	lab := netlabtest.UpString(t, scheduleLab)
	ms := time.Millisecond
	tl := lab.Timeline(t,
		netlabtest.LinkDownEvent("n1", "eth0").Every(300*ms).For(150*ms).Count(4),
		netlabtest.PartitionEvent([]string{"n2"}, []string{"n3"}).At(75*ms).Every(600*ms).For(300*ms).Count(2),
		netlabtest.ImpairEvent("n4", "eth0", netlabtest.Loss(20)).At(225*ms).Every(600*ms).For(300*ms).Count(2),
	)
	// A step every 75 ms, one at a time: the spread is the engine's, not a
	// queue's.
	tl.Wait(t, 30*time.Second)
	entries := tl.Log(t)
	st := tl.Status(t)

	// The schedule the runner followed: the same events, checked.
	events := []*topology.Event{
		{Every: 300 * ms, For: 150 * ms, Count: 4, LinkDown: []string{"n1/eth0"}},
		{At: 75 * ms, Every: 600 * ms, For: 300 * ms, Count: 2, Partition: &topology.PartitionSpec{Name: tl.Name() + "-2", A: []string{"n2"}, B: []string{"n3"}}},
		{At: 225 * ms, Every: 600 * ms, For: 300 * ms, Count: 2, Impair: []topology.InterfaceImpair{{Interface: "n4/eth0", Impair: topology.Impair{Loss: 20}}}},
	}
	steps := timeline.New(events).Steps(0, 100)
	if len(steps) != 16 || len(entries) != len(steps) || st.Done != 16 {
		t.Fatalf("%d entries, %d steps scheduled, status %+v", len(entries), len(steps), st)
	}
	start, err := time.Parse(time.RFC3339Nano, st.Start)
	if err != nil {
		t.Fatal(err)
	}
	var late, off []time.Duration
	within := 0
	results := map[string]int{}
	for i, e := range entries {
		s := steps[i]
		if e.Step != i || e.Action != s.Action.String() || e.Undo != s.Undo || e.Event != s.Event || e.Occurrence != s.Occurrence {
			t.Errorf("entry %d: %+v, want step %+v", i, e, s)
		}
		// The stamps hold milliseconds.
		if d := e.Planned.Sub(start.Add(s.At)); d < -ms || d > ms {
			t.Errorf("step %d planned at %s, the schedule says %s", i, e.Planned.Format(timeline.StampLayout), start.Add(s.At).Format(timeline.StampLayout))
		}
		// On a loaded machine steps fall behind: one that a later step due
		// at once makes moot is skipped, and the next finds the lab as it
		// wants it. Only a failure is wrong.
		results[e.Result]++
		if e.Result == timeline.Failed {
			t.Errorf("step %d (%s): %s", i, e.Action, e.Error)
		}
		late, off = append(late, e.Late()), append(off, e.Off())
		if e.Off() >= 0 && e.Off() <= 50*ms {
			within++
		}
	}
	t.Logf("timeline of %d steps over %s: started after the planned time: %s", len(entries), steps[len(steps)-1].At, spread(late))
	t.Logf("change in place after the planned time: %s; %d of %d within 50 ms; results %v", spread(off), within, len(off), results)

	// Where the schedule leaves the lab: every cable plugged in, no
	// partition, the file's impairment; and no drift.
	end := timeline.Intended(steps)
	status, err := lab.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(end.Pulled()) != 0 || len(end.InForce()) != 0 || len(status.LinksDown) != 0 || len(status.Partitions) != 0 || len(status.Drift) != 0 {
		t.Errorf("after the timeline: intended %v %v; the lab's cables pulled %v, partitions %v, drift %v", end.Pulled(), end.InForce(), status.LinksDown, status.Partitions, status.Drift)
	}
	if im := lab.Impairment(t, "n4", "eth0"); !im.IsZero() {
		t.Errorf("n4/eth0 keeps %s after its impairment was undone", im)
	}

	// The file's timeline, from the test.
	blip := lab.StartTimeline(t, "blip")
	blip.Wait(t, 30*time.Second)
	if log := blip.Log(t); len(log) != 2 || log[0].Action != "link-down n2/eth0" || log[1].Action != "link-up n2/eth0" || !lab.Carrier(t, "n2", "eth0") {
		t.Errorf("the file's blip: %+v, n2/eth0 carrier %v", log, lab.Carrier(t, "n2", "eth0"))
	}
}

// crashLab: n2's cable is pulled from the bridge's side, so that plugging
// it back brings n2/eth0 up with its IPv6 address and routes, several
// actions one after the other (the kernel flushed them): a crash after the
// second leaves the event half done.
const crashLab = `name: crash
bridges:
  sw: {type: linux}
namespaces:
  n1: {interfaces: {eth0: {peer: sw/p1, addresses: [10.98.0.1/24, fd00:98::1/64]}}}
  n2:
    interfaces: {eth0: {peer: sw/p2, addresses: [10.98.0.2/24, fd00:98::2/64]}}
    routes: [{to: 10.99.0.0/24, via: 10.98.0.1}, {to: "fd00:99::/64", via: "fd00:98::1"}]
  n3: {interfaces: {eth0: {peer: sw/p3, addresses: [10.98.0.3/24, fd00:98::3/64]}}}
timelines:
  chaos:
    - {at: 1s, link-down: host/p2, for: 500ms}
    - {at: 1h, link-down: n3/eth0}
  boot:
    start: up
    events: [{at: 100ms, impair: {n1/eth0: {loss: 1%}}}]
  flap:
    - {every: 60ms, link-down: n1/eth0, for: 30ms}
    - {at: 40ms, every: 120ms, partition: {a: [n1], b: [n2, n3]}, for: 50ms}
  slow:
    - {at: 1h, impair: {n3/eth0: {delay: 20ms}}}
`

// runnerState reads a process's state letter from /proc ("" when gone).
func runnerState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// pidIn reads the first number of a file: a pidfile, or a supervisor's
// state file's "pid".
func pidIn(t *testing.T, path string) int {
	t.Helper()
	b := readFile(t, path)
	if strings.HasPrefix(b, "{") {
		i := strings.Index(b, `"pid":`)
		if i < 0 {
			t.Fatalf("%s names no pid: %s", path, b)
		}
		b = b[i+len(`"pid":`):]
	}
	f := strings.FieldsFunc(b, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) == 0 {
		t.Fatalf("%s: no pid in %q", path, b)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// Crashes of a timeline's processes, through the command line: its runner
// killed in the middle of an event (after the event's second action, the
// supervisor held so it cannot start it again) leaves the event half done,
// which status shows as drift and up completes, restarting the runner where
// it was; a runner killed with kill -9 is started again by its supervisor;
// a supervisor killed in the middle of a flap, and a down while another
// flaps, leave the machine as it was.
func TestTimelineCrash(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "crash.yaml", crashLab)
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	lab := p + "crash"
	t.Cleanup(func() { netlab(t, "down", lab) })
	dir := filepath.Join("/run/netlab/labs", lab, "timelines")

	// up started the boot timeline: n1/eth0 loses 1% once it has run.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(mustNetlab(t, "timeline", lab), "timeline boot: done, 1 of 1 steps"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("up did not run the boot timeline:\n%s", mustNetlab(t, "timeline", lab))
		}
	}
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "impair: loss 1% (netlab impair)") {
		t.Errorf("after the boot timeline, n1/eth0 is not impaired:\n%s", st)
	}

	// What the command refuses, and says.
	if r := netlab(t, "timeline", lab, "start", "nosuch"); r.code != 1 || !strings.Contains(r.out, "no such timeline (the file has: chaos, boot, flap, slow)") {
		t.Errorf("start of a timeline the file lacks: exit %d\n%s", r.code, r.out)
	}
	if out := mustNetlab(t, "timeline", lab, "stop", "nosuch"); !strings.Contains(out, "timeline nosuch: not running") {
		t.Errorf("stop of a timeline not running:\n%s", out)
	}
	sup, err := observe.ProbeImpair()
	if err != nil {
		t.Fatal(err)
	}
	if r := netlab(t, "timeline", lab, "start", "slow"); sup.Netem {
		if r.code != 0 {
			t.Errorf("this kernel has netem: start of a delay: exit %d\n%s", r.code, r.out)
		}
		mustNetlab(t, "timeline", lab, "stop", "slow")
	} else if r.code != 1 || !strings.Contains(r.out, "crash.yaml:21:") || !strings.Contains(r.out, "delay needs the kernel's netem qdisc") {
		t.Errorf("start of a delay without netem: exit %d, want 1 naming sch_netem at the event's line\n%s", r.code, r.out)
	}

	// Started with the crash hook, which only the runner meets (the start
	// applies one action); its supervisor is held before the first step.
	if r := run(t, []string{"NETLAB_CRASH_AFTER=2"}, netlabBin, "timeline", lab, "start", "chaos"); r.code != 0 {
		t.Fatalf("timeline start: exit %d\n%s", r.code, r.out)
	}
	supervisor := pidIn(t, filepath.Join(dir, "chaos.pid"))
	runner := pidIn(t, filepath.Join(dir, "chaos.state"))
	if err := syscall.Kill(supervisor, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); runnerState(runner) != "Z" && runnerState(runner) != ""; {
		if time.Now().After(deadline) {
			t.Fatalf("the runner %d did not crash at the cable's plugging back:\n%s", runner, readFile(t, filepath.Join(dir, "chaos.log")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(supervisor, syscall.SIGKILL)
	// Half done: n2/eth0 is up again, without what comes back after it.
	if f, _ := linkFlags(t, p+"n2", "eth0"); !f["UP"] || f["NO-CARRIER"] {
		t.Errorf("after the crash, n2/eth0 is not up with its carrier: %v", f)
	}
	if rt := sh(t, "ip", "-n", p+"n2", "-6", "route", "show", "fd00:99::/64"); strings.TrimSpace(rt) != "" {
		t.Errorf("the crash came after the routes were back, not in the middle of the event: %s", rt)
	}
	status := mustNetlab(t, "status", lab)
	if !strings.Contains(status, "timeline chaos: not running") || !strings.Contains(status, "route replace 10.99.0.0/24") {
		t.Errorf("status after the crash must show the timeline not running and the routes missing as drift:\n%s", status)
	}
	out := mustNetlab(t, "up", "--prefix", p, file)
	if !strings.Contains(out, "ip -n "+p+"n2 route replace 10.99.0.0/24 via 10.98.0.1") || !strings.Contains(out, "timeline-run: timeline chaos") ||
		strings.Contains(out, "timeline boot") {
		t.Errorf("up after the crash must finish the event and restart the runner (and leave the done boot timeline alone):\n%s", out)
	}
	if !strings.Contains(mustNetlab(t, "status", lab), "drift: none") {
		t.Errorf("drift after up:\n%s", mustNetlab(t, "status", lab))
	}
	if rt := sh(t, "ip", "-n", p+"n2", "-6", "route", "show", "fd00:99::/64"); !strings.Contains(rt, "via fd00:98::1") {
		t.Errorf("after up, n2 has no route fd00:99::/64: %q", rt)
	}
	// The restarted runner takes the crashed step up again: up to date.
	var log []timeline.Entry
	for deadline := time.Now().Add(10 * time.Second); len(log) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted runner did not log the crashed step:\n%s", readFile(t, filepath.Join(dir, "chaos.log")))
		}
		log, _ = timeline.ParseLog([]byte(readFile(t, filepath.Join(dir, "chaos.events"))))
	}
	if log[0].Result != timeline.Done || log[1].Step != 1 || log[1].Result != timeline.UpToDate || len(log) != 2 {
		t.Errorf("event log after the restart:\n%+v", log)
	}
	if out := mustNetlab(t, "timeline", lab, "start", "chaos"); !strings.Contains(out, "timeline chaos: up to date: running") {
		t.Errorf("start of a running timeline:\n%s", out)
	}
	if out := mustNetlab(t, "timeline", lab, "log", "chaos"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "step 1: link-up host/p2 (event 0, time 1, undone): up to date") {
		t.Errorf("timeline log:\n%s", out)
	}

	// kill -9 of the runner: its supervisor starts it again, idle until
	// its next step in an hour.
	runner = pidIn(t, filepath.Join(dir, "chaos.state"))
	syscall.Kill(runner, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tls := mustNetlab(t, "timeline", lab, "--json")
		if strings.Contains(tls, `"restarts": 1`) && strings.Contains(tls, `"state": "running"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor did not restart the killed runner:\n%s", tls)
		}
	}

	// A flap whose supervisor is killed mid-flight, then down: nothing
	// left of the lab, its runners or what the flap did.
	mustNetlab(t, "timeline", lab, "start", "flap")
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(pidIn(t, filepath.Join(dir, "flap.pid")), syscall.SIGKILL)
	if out := mustNetlab(t, "down", lab); !strings.Contains(out, "timeline chaos") {
		t.Errorf("down does not say it stopped the chaos timeline's runner:\n%s", out)
	}
	sameHost(t, before)

	// Down while a flap runs.
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	mustNetlab(t, "timeline", lab, "start", "flap")
	time.Sleep(400 * time.Millisecond)
	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
