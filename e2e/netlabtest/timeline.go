package netlabtest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/timeline"
	"github.com/netlab-dev/netlab/topology"
)

// TimelineEvent is one event of a timeline made in a test: an action (a
// cable pulled or plugged in, a partition made or healed, an impairment
// set), at a time after the timeline starts, perhaps again every period
// for a count, perhaps undone a while later. Build one with LinkDownEvent,
// LinkUpEvent, PartitionEvent, HealEvent or ImpairEvent, then set its times:
//
//	netlabtest.LinkDownEvent("n2", "eth0").At(time.Second).Every(2 * time.Second).Count(5).For(500 * time.Millisecond)
type TimelineEvent struct {
	e topology.Event
	// impair is an ImpairEvent's interface and options, made whole over
	// the file's impairment when the timeline starts.
	impair     string
	impairOpts []ImpairOption
}

// At sets when the event happens, after the timeline starts (default 0).
func (ev *TimelineEvent) At(d time.Duration) *TimelineEvent { ev.e.At = d; return ev }

// Every makes the event happen again every period (at least 10ms), until
// the timeline is stopped unless Count bounds it.
func (ev *TimelineEvent) Every(d time.Duration) *TimelineEvent { ev.e.Every = d; return ev }

// Count bounds how many times in all an event with Every happens.
func (ev *TimelineEvent) Count(n int) *TimelineEvent { ev.e.Count = n; return ev }

// For undoes the event d after each time (shorter than Every): the cable
// plugged back, the partition healed, the file's impairment back.
func (ev *TimelineEvent) For(d time.Duration) *TimelineEvent { ev.e.For = d; return ev }

// LinkDownEvent pulls the cable of ns/iface ("host" for a host-side veth
// end or a bridge port), as Lab.LinkDown does.
func LinkDownEvent(ns, iface string) *TimelineEvent {
	return &TimelineEvent{e: topology.Event{LinkDown: []string{ns + "/" + iface}}}
}

// LinkUpEvent plugs the cable of ns/iface back, as Lab.LinkUp does.
func LinkUpEvent(ns, iface string) *TimelineEvent {
	return &TimelineEvent{e: topology.Event{LinkUp: []string{ns + "/" + iface}}}
}

// PartitionEvent cuts the traffic between the namespaces of a and those of
// b (the file's names), as Lab.Partition does: OneWay and PartitionName
// apply. Its name is otherwise the timeline's and the event's number
// (t1-2), which a HealEvent names.
func PartitionEvent(a, b []string, opts ...PartitionOption) *TimelineEvent {
	var o partitionOptions
	for _, fn := range opts {
		fn(&o)
	}
	return &TimelineEvent{e: topology.Event{Partition: &topology.PartitionSpec{Name: o.name, A: a, B: b, OneWay: o.oneWay}}}
}

// HealEvent heals the partitions named, as `netlab heal` does.
func HealEvent(names ...string) *TimelineEvent {
	return &TimelineEvent{e: topology.Event{Heal: names}}
}

// ImpairEvent sets the impairment of ns/iface: the file's, with the
// options applied (NoImpair first starts from none), as Lab.Impair does.
// A kernel that cannot apply them (a delay without netem) fails the
// timeline's start.
func ImpairEvent(ns, iface string, opts ...ImpairOption) *TimelineEvent {
	return &TimelineEvent{impair: ns + "/" + iface, impairOpts: opts}
}

// Timeline is a timeline of events running on a lab, carried out by its
// runner, a supervised netlab process of the lab (`netlab timeline-run`):
// each event a locked, journaled change as `netlab link`, `partition`,
// `heal` and `impair` make, logged with its planned and actual times.
type Timeline struct {
	l    *Lab
	name string
	// stop stops it once (Stop, or the test's cleanup).
	stop func(t testing.TB)
}

// TimelineEntry is one line of a timeline's event log: a step, when it was
// planned, started and finished (Late, Took, Off), and how it went.
type TimelineEntry = timeline.Entry

// TimelineStatus is where a timeline is: its state, steps done, next step.
type TimelineStatus = engine.TimelineStatus

var timelines atomic.Int64

// Timeline starts a timeline of the events on the lab and returns it; its
// clock starts once its runner runs, soon after. When the test ends it is
// stopped and the file's state given back to everything it touches (its
// cables plugged in, its partitions healed, the file's impairments), and
// when the test failed its event log goes to the test's log. Its runner is
// the netlab binary (NETLAB_BIN, or netlab on PATH: see BuildNetlab).
//
//	tl := lab.Timeline(t,
//		netlabtest.PartitionEvent([]string{"n1"}, []string{"n2", "n3"}).At(2*time.Second).For(5*time.Second),
//		netlabtest.LinkDownEvent("n2", "eth0").At(10*time.Second).Every(time.Second).Count(3).For(200*time.Millisecond),
//	)
//	tl.Wait(t, time.Minute) // every step behind it
//	for _, e := range tl.Log(t) { t.Logf("%s: %s late", e.Action, e.Off()) }
//
// Equivalent to: a timelines: entry in the file, and `netlab timeline LAB
// start NAME`.
func (l *Lab) Timeline(t testing.TB, events ...*TimelineEvent) *Timeline {
	t.Helper()
	name := fmt.Sprintf("t%d", timelines.Add(1))
	tl := &topology.Timeline{Name: name, Start: topology.StartManual}
	for _, ev := range events {
		e := ev.e
		if ev.impair != "" {
			ns, iface, _ := strings.Cut(ev.impair, "/")
			im := l.lab.FileImpair(l.NS(ns), l.ifName(ns, iface))
			for _, o := range ev.impairOpts {
				o(&im)
			}
			e.Impair = []topology.InterfaceImpair{{Interface: ev.impair, Impair: im}}
		}
		tl.Events = append(tl.Events, &e)
	}
	return l.startTimeline(t, tl)
}

// StartTimeline starts the timeline name of the lab's file (its
// timelines:) and returns it, to wait for and read; it is stopped as
// Timeline's are.
//
// Equivalent to: `netlab timeline LAB start NAME`.
func (l *Lab) StartTimeline(t testing.TB, name string) *Timeline {
	t.Helper()
	ft := l.lab.Timeline(name)
	if ft == nil {
		t.Fatalf("netlabtest: lab %s: its file has no timeline %s", l.lab.Name, name)
	}
	return l.startTimeline(t, ft)
}

// Flap pulls the cable of ns/iface every period, for downFor each time
// (shorter than period), count times (0: until the test ends), starting
// at once: a timeline of one event, as LinkDownEvent(ns,
// iface).Every(period).For(downFor).Count(count) makes. The cable is
// plugged back when the test ends.
//
//	flap := lab.Flap(t, "n2", "eth0", time.Second, 200*time.Millisecond, 10)
//	flap.Wait(t, 30*time.Second)
func (l *Lab) Flap(t testing.TB, ns, iface string, period, downFor time.Duration, count int) *Timeline {
	t.Helper()
	return l.Timeline(t, LinkDownEvent(ns, iface).Every(period).For(downFor).Count(count))
}

func (l *Lab) startTimeline(t testing.TB, tl *topology.Timeline) *Timeline {
	t.Helper()
	h := &Timeline{l: l, name: tl.Name}
	var once sync.Once
	h.stop = func(t testing.TB) {
		once.Do(func() {
			if _, err := l.eng.StopTimeline(l.lab.Name, true, tl.Name); err != nil {
				t.Errorf("netlabtest: stop timeline %s and give the file's state back: %v", tl.Name, err)
			}
		})
	}
	// Registered first: a failed start may still have been journaled.
	t.Cleanup(func() {
		if t.Failed() {
			h.logTail(t)
		}
		h.stop(t)
	})
	if _, err := l.eng.StartTimeline(l.lab.Name, tl); err != nil {
		t.Fatalf("netlabtest: start timeline %s: %v", tl.Name, err)
	}
	return h
}

// Name is the timeline's name, as `netlab timeline` and status show it.
func (tl *Timeline) Name() string { return tl.name }

// Status says where the timeline is: its state ("starting", "running",
// "done", "stopped", "not running"), steps done, the next step.
func (tl *Timeline) Status(t testing.TB) TimelineStatus {
	t.Helper()
	st, err := tl.status()
	if err != nil {
		t.Fatalf("netlabtest: timeline %s: %v", tl.name, err)
	}
	return st
}

func (tl *Timeline) status() (TimelineStatus, error) {
	all, err := tl.l.eng.Timelines(tl.l.lab.Name)
	if err != nil {
		return TimelineStatus{}, err
	}
	for _, st := range all {
		if st.Name == tl.name {
			return st, nil
		}
	}
	return TimelineStatus{}, fmt.Errorf("lab %s has no timeline %s", tl.l.lab.Name, tl.name)
}

// Wait waits until every step of the timeline is behind it, and fails the
// test past the timeout, when the timeline stops or its runner dies before,
// or when a step failed (the event log says why). A timeline that repeats
// until stopped never ends: WaitSteps waits for some of its steps.
func (tl *Timeline) Wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := tl.wait(-1, timeout); err != nil {
		t.Fatalf("netlabtest: timeline %s: %v", tl.name, err)
	}
}

// WaitSteps waits until n steps of the timeline are behind it (each
// event's action is a step, and its undoing another), as Wait does.
func (tl *Timeline) WaitSteps(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	if err := tl.wait(n, timeout); err != nil {
		t.Fatalf("netlabtest: timeline %s: %v", tl.name, err)
	}
}

func (tl *Timeline) wait(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := tl.status()
		if err != nil {
			return err
		}
		if st.Failed > 0 {
			return fmt.Errorf("%d steps failed: %s", st.Failed, tl.failures())
		}
		if n < 0 && st.Steps < 0 {
			return errors.New("it repeats until stopped, so it never ends: use WaitSteps")
		}
		want := n
		if n < 0 || st.Steps >= 0 && n > st.Steps {
			want = st.Steps
		}
		switch {
		case st.Done >= want:
			return nil
		case st.State == "stopped" || st.State == "done":
			return fmt.Errorf("%s after %d of %d steps", st.State, st.Done, want)
		case st.State == "not running" && st.Exit != "":
			return fmt.Errorf("its runner died (%s) after %d of %d steps; its log: %s", st.Exit, st.Done, want, st.Log)
		case time.Now().After(deadline):
			return fmt.Errorf("%d of %d steps done after %s (state %s)", st.Done, want, timeout, st.State)
		}
		// Each look reads the journal, the file and the event log: often
		// enough for a test, seldom enough to leave the CPUs to the lab.
		time.Sleep(50 * time.Millisecond)
	}
}

// failures lists the failed steps of the event log.
func (tl *Timeline) failures() string {
	entries, _ := tl.l.eng.TimelineLog(tl.l.lab.Name, tl.name)
	var out []string
	for _, e := range entries {
		if e.Result == timeline.Failed {
			out = append(out, fmt.Sprintf("step %d (%s): %s", e.Step, e.Action, e.Error))
		}
	}
	return strings.Join(out, "; ")
}

// Log reads the timeline's event log: one entry per step behind it, in
// order, with its planned, started and finished times.
func (tl *Timeline) Log(t testing.TB) []TimelineEntry {
	t.Helper()
	entries, err := tl.l.eng.TimelineLog(tl.l.lab.Name, tl.name)
	if err != nil {
		t.Fatalf("netlabtest: timeline %s: %v", tl.name, err)
	}
	return entries
}

// Stop stops the timeline (its runner finishes the step it is carrying
// out) and gives the file's state back to everything it touches; the test's
// cleanup does it too.
func (tl *Timeline) Stop(t testing.TB) {
	t.Helper()
	tl.stop(t)
}

// logTail puts the last steps of the event log in a failed test's log.
func (tl *Timeline) logTail(t testing.TB) {
	entries, err := tl.l.eng.TimelineLog(tl.l.lab.Name, tl.name)
	if err != nil {
		t.Logf("netlabtest: timeline %s: %v", tl.name, err)
		return
	}
	if len(entries) > 20 {
		entries = entries[len(entries)-20:]
	}
	var b strings.Builder
	for _, e := range entries {
		b.WriteString("\n  " + e.Text())
	}
	t.Logf("netlabtest: timeline %s's last steps:%s", tl.name, b.String())
}
