package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/internal/timeline"
	"github.com/netlab-dev/netlab/topology"
)

// Timelines run events on a lab over time: a timeline (topology.Timeline)
// is journaled, then carried out by its runner, `netlab timeline-run`, a
// process of the lab supervised like a service's program (`netlab
// supervise`, restarted when it fails). The runner sleeps until each
// step's time and carries it out as `netlab link`, `partition`, `heal` and
// `impair` do — SetLinkState, Partition, Heal, Impair: one locked,
// journaled change each — so the state the steps set is the journal's,
// which up restores after a crash and down removes. It logs every step
// (planned, started, finished) to the timeline's event log and resumes,
// when restarted, one past the last step logged.

// ErrNoTimeline is wrapped by errors about a timeline the lab (or its
// file) does not have.
var ErrNoTimeline = errors.New("no such timeline")

// ErrTimelineRunning is wrapped when a timeline of that name runs with
// other events: stop it first.
var ErrTimelineRunning = errors.New("timeline running")

// TimelineResult is what StartTimeline did.
type TimelineResult struct {
	// Timeline is the timeline as journaled.
	Timeline state.Timeline
	// UpToDate says it ran already, with the same events.
	UpToDate bool
	// Plan is the actions applied: the runner's start.
	Plan plan.Plan
}

// StartFileTimeline starts the timeline name of the lab's file, as
// StartTimeline does.
//
// Equivalent to: `netlab timeline LAB start NAME`.
func (e *Engine) StartFileTimeline(lab, name string) (*TimelineResult, error) {
	full, err := e.LabFile(lab)
	if err != nil {
		return nil, err
	}
	t := full.Timeline(name)
	if t == nil {
		var names []string
		for _, t := range full.Timelines {
			names = append(names, t.Name)
		}
		return nil, fmt.Errorf("lab %s: timeline %s: %w (the file has: %s)", lab, name, ErrNoTimeline, nameList(names))
	}
	return e.StartTimeline(lab, t)
}

func nameList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// StartTimeline starts a timeline on a running lab: it is checked against
// the lab (the events' interfaces and namespaces, what this kernel can
// apply of its impairments), journaled, and its runner started; it returns
// once the runner runs. Its clock starts when the runner does. The same
// timeline running already is up to date; another one of that name running
// is refused (ErrTimelineRunning). A timeline that ended (done, stopped)
// starts over, its event log emptied.
func (e *Engine) StartTimeline(lab string, t *topology.Timeline) (*TimelineResult, error) {
	res := &TimelineResult{}
	full, err := e.LabFile(lab)
	if err != nil {
		return nil, err
	}
	if err := full.CheckTimeline(t); err != nil {
		return nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	sup, err := e.probe()
	if err != nil {
		return nil, err
	}
	if err := plan.TimelineFeatureError(full, []*topology.Timeline{t}, sup); err != nil {
		return nil, fmt.Errorf("lab %s: timeline %s: %w", lab, t.Name, err)
	}
	events := supervise.New(e.store, lab, nil).TimelineEvents(t.Name)
	applied, err := e.event(lab, func(j *state.Journal, _, _ *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		rec := state.Timeline{Name: t.Name, Events: t.Events, Hash: state.TimelineHash(t.Events)}
		if old := j.Timeline(t.Name); old != nil && old.Running() {
			if old.Hash != rec.Hash {
				return nil, fmt.Errorf("timeline %s runs with other events (stop it first: netlab timeline %s stop %s): %w", t.Name, lab, t.Name, ErrTimelineRunning)
			}
			res.Timeline, res.UpToDate = *old, true
			return plan.TimelineEvents, nil // its runner, if it died
		}
		// A new run: the last run's event log goes (the runner of that run
		// has ended: its timeline was not running).
		if err := os.Remove(events); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		j.SetTimeline(rec)
		res.Timeline = rec
		return plan.TimelineEvents, nil
	})
	res.Plan = applied
	if err != nil {
		return res, fmt.Errorf("lab %s: timeline %s: %w", lab, t.Name, err)
	}
	return res, nil
}

// StopResult is what StopTimeline did.
type StopResult struct {
	// Stopped are the timelines stopped (their runner ended, if it ran);
	// Missing the names asked for that the lab has no running timeline
	// of.
	Stopped []string
	Missing []string
	// Plan is the actions applied: the reset's, with reset.
	Plan plan.Plan
}

// StopTimeline stops timelines of a running lab: those named, or every
// running one. Each runner finishes the step it is carrying out and ends,
// and the timeline is journaled as stopped (up does not restart it). What
// its steps set stays (the cables they pulled, the partitions they made),
// unless reset: then the file's state comes back to everything the
// timeline touches — each cable it pulls or plugs plugged in, each
// partition it makes healed, each interface it impairs given the file's
// impairment — each as `netlab link ... up`, `netlab heal` and `netlab
// impair --reset` do.
//
// Equivalent to: `netlab timeline LAB stop [NAME...] [--reset]`.
func (e *Engine) StopTimeline(lab string, reset bool, names ...string) (*StopResult, error) {
	res := &StopResult{}
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if !e.store.Exists(lab) {
		return nil, notRunning(lab)
	}
	var stop []state.Timeline
	if len(names) == 0 {
		for _, t := range j.Timelines {
			if t.Running() {
				stop = append(stop, t)
			}
		}
	}
	for _, n := range names {
		if t := j.Timeline(n); t != nil && (t.Running() || reset) {
			stop = append(stop, *t)
		} else {
			res.Missing = append(res.Missing, n)
		}
	}
	// The runners are stopped before the lab's lock is taken: one that
	// waits for the lock to carry out its step would hold its supervisor
	// (and this stop) for the grace time.
	procs := supervise.New(e.store, lab, e.log)
	var errs []error
	for _, t := range stop {
		errs = append(errs, procs.StopTimeline(t.Name))
	}
	applied, err := e.event(lab, func(j *state.Journal, _, _ *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		for _, t := range stop {
			if rec := j.Timeline(t.Name); rec != nil && rec.Running() {
				rec.Stopped = true
			}
			res.Stopped = append(res.Stopped, t.Name)
		}
		return plan.TimelineEvents, nil
	})
	res.Plan = append(res.Plan, applied...)
	errs = append(errs, err)
	if reset {
		for _, t := range stop {
			p, err := e.resetTimeline(lab, t.Events)
			res.Plan = append(res.Plan, p...)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("lab %s: stop timelines: %w", lab, err)
	}
	return res, nil
}

// resetTimeline gives the file's state back to everything the events
// touch, one engine call each.
func (e *Engine) resetTimeline(lab string, events []*topology.Event) (plan.Plan, error) {
	cables, parts, impaired := timeline.Touched(events)
	var out plan.Plan
	var errs []error
	for _, k := range cables {
		ns, link, _ := strings.Cut(k, "/")
		r, err := e.SetLinkState(lab, ns, link, false)
		if r != nil {
			out = append(out, r.Plan...)
		}
		errs = append(errs, err)
	}
	if len(parts) > 0 {
		r, err := e.Heal(lab, parts...)
		if r != nil {
			out = append(out, r.Plan...)
		}
		errs = append(errs, err)
	}
	for _, k := range impaired {
		ns, link, _ := strings.Cut(k, "/")
		r, err := e.Impair(lab, ns, link, nil)
		if r != nil {
			out = append(out, r.Plan...)
		}
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// carryOut carries out a step's action, as the verbs do: one locked,
// journaled engine call per interface (or per partition change). It
// returns how many of the plan's actions it applied.
func (e *Engine) carryOut(lab string, a timeline.Action) (int, error) {
	n := 0
	var errs []error
	switch a.Kind {
	case topology.EventLinkDown, topology.EventLinkUp:
		for _, k := range a.Interfaces {
			ns, link, _ := strings.Cut(k, "/")
			r, err := e.SetLinkState(lab, ns, link, a.Kind == topology.EventLinkDown)
			if r != nil {
				n += len(r.Plan)
			}
			errs = append(errs, err)
		}
	case topology.EventPartition:
		p := a.Partition
		r, err := e.Partition(lab, state.Partition{Name: p.Name, A: p.A, B: p.B, OneWay: p.OneWay})
		if r != nil {
			n += len(r.Plan)
		}
		errs = append(errs, err)
	case topology.EventHeal:
		r, err := e.Heal(lab, a.Heal...)
		if r != nil {
			n += len(r.Plan)
		}
		errs = append(errs, err)
	case topology.EventImpair:
		for _, k := range a.Interfaces {
			ns, link, _ := strings.Cut(k, "/")
			var change func(*topology.Impair) error
			if im, ok := a.Impair[k]; ok {
				change = func(cur *topology.Impair) error { *cur = im; return nil }
			}
			r, err := e.Impair(lab, ns, link, change)
			if r != nil {
				n += len(r.Plan)
			}
			if errors.Is(err, ErrNoInterface) && e.elsewhere(lab, ns, link) {
				continue // another machine's part of the lab: its runner's
			}
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("unknown action %q", a.Kind))
	}
	return n, errors.Join(errs...)
}

// elsewhere says whether ns/link is an interface of the lab on another
// machine than this one.
func (e *Engine) elsewhere(lab, ns, link string) bool {
	full, err := e.LabFile(lab)
	if err != nil {
		return false
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return false
	}
	_, _, err = resolveLink(full, j.Prefix, ns, link)
	return err == nil
}

// RunTimeline is the runner of the lab's timeline name (`netlab
// timeline-run`): it carries out each step at its time, logs it to the
// timeline's event log (and a line for a person to log), and returns when
// every step is done (the timeline is journaled done), when the journal no
// longer runs this timeline, or when ctx ends — after the step it is
// carrying out. Restarted, it resumes one past the last step logged; steps
// whose time passed meanwhile are due at once, and of those, one that a
// later one makes moot (timeline.Superseded) is skipped: the lab ends where
// the schedule says without replaying a flap's every beat.
func (e *Engine) RunTimeline(ctx context.Context, lab, name string, log io.Writer) error {
	j, err := e.store.Load(lab)
	if err != nil {
		return err
	}
	rec := j.Timeline(name)
	if rec == nil || !rec.Running() {
		fmt.Fprintf(log, "timeline %s: the lab's journal runs no such timeline: nothing to do\n", name)
		return nil
	}
	// Warm up what the first step would otherwise wait for: the probe of
	// the kernel's impairments (a scratch namespace). A failure is the
	// steps' to report, in the event log.
	if _, err := e.probe(); err != nil {
		fmt.Fprintf(log, "timeline %s: probing the kernel's impairments: %v\n", name, err)
	}
	eventsPath := supervise.New(e.store, lab, nil).TimelineEvents(name)
	start := rec.Start
	if start.IsZero() {
		if err := os.Remove(eventsPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if start, err = e.beginTimeline(lab, name, rec.Hash); err != nil {
			return err
		}
	}
	done, err := repairEventLog(eventsPath)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(eventsPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	sched := timeline.New(rec.Events)
	total := "until stopped"
	if n := sched.Len(); n >= 0 {
		total = fmt.Sprintf("%d steps", n)
	}
	fmt.Fprintf(log, "timeline %s: %d events, %s, clock started %s; at step %d\n", name, len(rec.Events), total, start.UTC().Format(timeline.StampLayout), done)
	cur := sched.Cursor()
	var held *timeline.Step // the cursor's next step, read ahead
	peek := func() (timeline.Step, bool) {
		if held == nil {
			st, ok := cur.Next()
			if !ok {
				return st, false
			}
			held = &st
		}
		return *held, true
	}
	for st, ok := peek(); ok && st.Index < done; st, ok = peek() {
		held = nil
	}
	for {
		first, ok := peek()
		if !ok {
			fmt.Fprintf(log, "timeline %s: done (%d steps)\n", name, done)
			return e.finishTimeline(lab, name, start)
		}
		if wait := time.Until(start.Add(first.At)); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				fmt.Fprintf(log, "timeline %s: stopped before step %d\n", name, done)
				return nil
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			fmt.Fprintf(log, "timeline %s: stopped before step %d\n", name, done)
			return nil
		}
		// Every step due by now: usually the one; after a restart, or
		// behind a slow step, all that are late.
		now := time.Now()
		var due []timeline.Step
		for st, ok := peek(); ok && !start.Add(st.At).After(now); st, ok = peek() {
			due = append(due, st)
			held = nil
		}
		if still, err := e.stillRunning(lab, name, start); err != nil {
			return err
		} else if !still {
			fmt.Fprintf(log, "timeline %s: no longer running in the lab's journal (stopped, or started over): ending\n", name)
			return nil
		}
		moot := timeline.Superseded(due)
		for i, st := range due {
			en := timeline.Entry{Step: st.Index, Event: st.Event, Occurrence: st.Occurrence, Undo: st.Undo, Action: st.Action.String(),
				Planned: start.Add(st.At), Started: time.Now()}
			if moot[i] {
				en.Result, en.Finished = timeline.Skipped, en.Started
			} else {
				n, err := e.carryOut(lab, st.Action)
				en.Finished, en.Actions = time.Now(), n
				switch {
				case err != nil:
					en.Result, en.Error = timeline.Failed, err.Error()
				case n == 0:
					en.Result = timeline.UpToDate
				default:
					en.Result = timeline.Done
				}
			}
			if _, err := f.Write(en.Line()); err != nil {
				return fmt.Errorf("timeline %s: event log: %w", name, err)
			}
			fmt.Fprintln(log, en.Text())
			done = st.Index + 1
			if ctx.Err() != nil {
				fmt.Fprintf(log, "timeline %s: stopped after step %d\n", name, st.Index)
				return nil
			}
		}
	}
}

// repairEventLog cuts a last line a killed runner left half written, and
// returns the step to resume at.
func repairEventLog(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if n := len(b); n > 0 && b[n-1] != '\n' {
		b = b[:bytes.LastIndexByte(b, '\n')+1]
		if err := os.Truncate(path, int64(len(b))); err != nil {
			return 0, err
		}
	}
	entries, err := timeline.ParseLog(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return timeline.Next(entries), nil
}

// beginTimeline starts the clock of a journaled timeline, under the lab's
// lock: now, unless it started already (a runner that raced this one).
func (e *Engine) beginTimeline(lab, name, hash string) (time.Time, error) {
	var start time.Time
	err := e.journalChange(lab, func(j *state.Journal) error {
		t := j.Timeline(name)
		if t == nil || !t.Running() || t.Hash != hash {
			return fmt.Errorf("timeline %s: no longer running in the lab's journal", name)
		}
		if t.Start.IsZero() {
			t.Start = time.Now().UTC()
		}
		start = t.Start
		return nil
	})
	return start, err
}

// finishTimeline journals a timeline done, if it is still the run that
// started at start.
func (e *Engine) finishTimeline(lab, name string, start time.Time) error {
	return e.journalChange(lab, func(j *state.Journal) error {
		if t := j.Timeline(name); t != nil && t.Running() && t.Start.Equal(start) {
			t.Done = true
		}
		return nil
	})
}

// stillRunning says whether the journal still runs the timeline's run
// that started at start (not stopped, not started over).
func (e *Engine) stillRunning(lab, name string, start time.Time) (bool, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return false, err
	}
	t := j.Timeline(name)
	return t != nil && t.Running() && t.Start.Equal(start), nil
}

// journalChange changes a running lab's journal under its lock.
func (e *Engine) journalChange(lab string, change func(j *state.Journal) error) error {
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return err
	}
	defer unlock()
	if !e.store.Exists(lab) {
		return notRunning(lab)
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return err
	}
	if err := change(j); err != nil {
		return err
	}
	return e.store.Save(j)
}

// TimelineStatus is one timeline of a lab: where it is.
type TimelineStatus struct {
	Name string `json:"name"`
	// State is "running", "starting" (its runner has not started the
	// clock, or is being restarted), "not running" (a running timeline
	// whose runner died: up restarts it), "done", "stopped", or "not
	// started" (the file's, never started).
	State string `json:"state"`
	// Start is when its clock started (RFC 3339, milliseconds).
	Start string `json:"start,omitempty"`
	// Steps is how many steps it has (-1: until stopped), Done how many
	// are behind it (carried out, up to date, skipped or failed), Failed
	// how many of those failed.
	Steps  int `json:"steps"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// Next is the next step and when it is planned; Last the last step
	// logged.
	Next *NextStep       `json:"next,omitempty"`
	Last *timeline.Entry `json:"last,omitempty"`
	// PID is the runner's, Restarts how often its supervisor started it
	// again, Exit how it last ended.
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Exit     string `json:"exit,omitempty"`
	// Log is the runner's log, Events the event log (a JSON line per step).
	Log    string `json:"log"`
	Events string `json:"events"`
}

// NextStep is a timeline's next step.
type NextStep struct {
	Step    int    `json:"step"`
	Action  string `json:"action"`
	Planned string `json:"planned,omitempty"`
}

// Timelines reports a running lab's timelines: those it runs or ran, then
// the file's never started.
func (e *Engine) Timelines(lab string) ([]TimelineStatus, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if !e.store.Exists(lab) {
		return nil, notRunning(lab)
	}
	snap := &state.Snapshot{}
	procs := supervise.New(e.store, lab, nil)
	procs.ObserveTimelines(snap)
	file, _ := e.LabFile(lab) // without it, the file's are not listed
	return timelineStatus(procs, j, snap, file), nil
}

func timelineStatus(procs *supervise.Supervisor, j *state.Journal, snap *state.Snapshot, file *topology.Lab) []TimelineStatus {
	var out []TimelineStatus
	for _, t := range j.Timelines {
		sched := timeline.New(t.Events)
		ts := TimelineStatus{Name: t.Name, Steps: sched.Len(), Log: procs.TimelineLog(t.Name), Events: procs.TimelineEvents(t.Name)}
		if !t.Start.IsZero() {
			ts.Start = t.Start.UTC().Format(timeline.StampLayout)
		}
		if b, err := os.ReadFile(ts.Events); err == nil {
			entries, _ := timeline.ParseLog(b)
			ts.Done = timeline.Next(entries)
			for _, en := range entries {
				if en.Result == timeline.Failed {
					ts.Failed++
				}
			}
			if len(entries) > 0 {
				last := entries[len(entries)-1]
				ts.Last = &last
			}
		}
		tp := snap.Timelines[t.Name]
		if tp != nil {
			ts.PID, ts.Restarts, ts.Exit = tp.PID, tp.Restarts, tp.Exit
		}
		switch {
		case t.Done:
			ts.State = "done"
		case t.Stopped:
			ts.State = "stopped"
		case tp == nil || tp.Supervisor == 0:
			ts.State = "not running"
		case tp.PID == 0 || t.Start.IsZero():
			ts.State = "starting"
		default:
			ts.State = "running"
		}
		if t.Running() {
			if st, ok := sched.Step(ts.Done); ok {
				ts.Next = &NextStep{Step: st.Index, Action: st.Action.String()}
				if !t.Start.IsZero() {
					ts.Next.Planned = t.Start.Add(st.At).UTC().Format(timeline.StampLayout)
				}
			}
		}
		out = append(out, ts)
	}
	if file != nil {
		for _, t := range file.Timelines {
			if j.Timeline(t.Name) != nil {
				continue
			}
			out = append(out, TimelineStatus{Name: t.Name, State: "not started", Steps: timeline.New(t.Events).Len(),
				Log: procs.TimelineLog(t.Name), Events: procs.TimelineEvents(t.Name)})
		}
	}
	return out
}

// TimelineLog reads a timeline's event log: one entry per step behind it.
func (e *Engine) TimelineLog(lab, name string) ([]timeline.Entry, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if j.Timeline(name) == nil {
		return nil, fmt.Errorf("lab %s: timeline %s: %w (not started)", lab, name, ErrNoTimeline)
	}
	b, err := os.ReadFile(supervise.New(e.store, lab, nil).TimelineEvents(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return timeline.ParseLog(b)
}

// TimelineOfSpec says which state root, lab and timeline a runner's spec
// path names (`netlab timeline-run SPEC`, as its supervisor starts it): the
// runner works on the store its starter used.
func TimelineOfSpec(path string) (root, lab, name string, err error) {
	return supervise.TimelineOfSpec(path)
}
