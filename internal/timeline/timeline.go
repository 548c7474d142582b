// Package timeline is the pure side of a lab's timelines: the order in
// which a timeline's events happen (its steps: each event's action, again
// every period, undone after a while), which of several steps due at once a
// runner that fell behind still carries out, the state the steps intend,
// and the lines of the event log. It touches nothing: the runner (in the
// engine) sleeps, takes the lab's lock and writes the log.
package timeline

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// Step is one thing a timeline does at one moment: an event's action, or
// its undoing once the event's for: has run out.
type Step struct {
	// Index is the step's place in the timeline, from 0.
	Index int
	// Event is the event's place in the timeline, Occurrence which time
	// of the event it is (from 0), Undo that it undoes that occurrence.
	Event      int
	Occurrence int
	Undo       bool
	// At is when, after the timeline started.
	At     time.Duration
	Action Action
}

// Action is what a step does: one of the topology.Event* kinds, with what
// it acts on.
type Action struct {
	Kind string
	// Interfaces are the cables of a link-down or link-up, or the
	// interfaces of an impair ("ns/iface" as the file names them).
	Interfaces []string
	Partition  *topology.PartitionSpec
	Heal       []string
	// Impair is each interface's impairment from the step on; nil with
	// Interfaces set gives them the file's back (an impair undone).
	Impair map[string]topology.Impair
}

// String says what the action does, as the event log writes it:
// "link-down n2/eth0", "partition minority: n1 / n2,n3", "heal minority",
// "impair n1/eth0: loss 20%", "impair n1/eth0: the file's".
func (a Action) String() string {
	switch a.Kind {
	case topology.EventLinkDown, topology.EventLinkUp:
		return a.Kind + " " + strings.Join(a.Interfaces, ", ")
	case topology.EventPartition:
		p := a.Partition
		sep := " / "
		if p.OneWay {
			sep = " -> "
		}
		return fmt.Sprintf("partition %s: %s%s%s", p.Name, strings.Join(p.A, ","), sep, strings.Join(p.B, ","))
	case topology.EventHeal:
		return "heal " + strings.Join(a.Heal, ", ")
	case topology.EventImpair:
		var parts []string
		for _, k := range a.Interfaces {
			if im, ok := a.Impair[k]; ok {
				parts = append(parts, k+": "+im.String())
			} else {
				parts = append(parts, k+": the file's")
			}
		}
		return "impair " + strings.Join(parts, "; ")
	}
	return a.Kind
}

// Subjects are what the action sets the state of: "cable NS/IFACE",
// "partition NAME", "impair NS/IFACE". A later step with the same subjects
// makes the earlier one's effect moot.
func (a Action) Subjects() []string {
	var out []string
	switch a.Kind {
	case topology.EventLinkDown, topology.EventLinkUp:
		for _, k := range a.Interfaces {
			out = append(out, "cable "+k)
		}
	case topology.EventPartition:
		out = append(out, "partition "+a.Partition.Name)
	case topology.EventHeal:
		for _, n := range a.Heal {
			out = append(out, "partition "+n)
		}
	case topology.EventImpair:
		for _, k := range a.Interfaces {
			out = append(out, "impair "+k)
		}
	}
	return out
}

// actions are an event's action and its undoing.
func actions(e *topology.Event) (do, undo Action) {
	switch e.Kind() {
	case topology.EventLinkDown:
		return Action{Kind: topology.EventLinkDown, Interfaces: e.LinkDown}, Action{Kind: topology.EventLinkUp, Interfaces: e.LinkDown}
	case topology.EventLinkUp:
		return Action{Kind: topology.EventLinkUp, Interfaces: e.LinkUp}, Action{Kind: topology.EventLinkDown, Interfaces: e.LinkUp}
	case topology.EventPartition:
		return Action{Kind: topology.EventPartition, Partition: e.Partition}, Action{Kind: topology.EventHeal, Heal: []string{e.Partition.Name}}
	case topology.EventHeal:
		return Action{Kind: topology.EventHeal, Heal: e.Heal}, Action{}
	case topology.EventImpair:
		names := e.ImpairNames()
		set := map[string]topology.Impair{}
		for _, ii := range e.Impair {
			set[ii.Interface] = ii.Impair
		}
		return Action{Kind: topology.EventImpair, Interfaces: names, Impair: set}, Action{Kind: topology.EventImpair, Interfaces: names}
	}
	return Action{}, Action{}
}

// Schedule is the steps of a timeline's events, in the order they happen:
// by time; at one time undoings first (a flap's cable plugged back before
// another event pulls one), then in the order of the events.
type Schedule struct {
	events []*topology.Event
	total  int // -1: endless
}

// New returns the schedule of the events (checked: topology.CheckTimeline).
func New(events []*topology.Event) *Schedule {
	s := &Schedule{events: events}
	for _, e := range events {
		n := e.Occurrences()
		if n < 0 {
			s.total = -1
			return s
		}
		if e.For > 0 {
			n *= 2
		}
		s.total += n
	}
	return s
}

// Len is how many steps the timeline has; -1 when it never ends (an event
// repeats until the timeline is stopped).
func (s *Schedule) Len() int { return s.total }

// Cursor walks a schedule's steps in order.
type Cursor struct {
	s    *Schedule
	next int
	// occ and undo are each event's next step: its occurrence, and
	// whether it is that occurrence's undoing.
	occ  []int
	undo []bool
}

// Cursor returns a cursor at the schedule's first step.
func (s *Schedule) Cursor() *Cursor {
	return &Cursor{s: s, occ: make([]int, len(s.events)), undo: make([]bool, len(s.events))}
}

func (c *Cursor) at(i int) (time.Duration, bool) {
	e := c.s.events[i]
	if n := e.Occurrences(); n >= 0 && c.occ[i] >= n {
		return 0, false
	}
	t := e.At + time.Duration(c.occ[i])*e.Every
	if c.undo[i] {
		t += e.For
	}
	return t, true
}

// Next returns the next step; false past the last.
func (c *Cursor) Next() (Step, bool) {
	best := -1
	var bestAt time.Duration
	for i := range c.s.events {
		t, ok := c.at(i)
		if !ok {
			continue
		}
		if best < 0 || t < bestAt || t == bestAt && c.undo[i] && !c.undo[best] {
			best, bestAt = i, t
		}
	}
	if best < 0 {
		return Step{}, false
	}
	e := c.s.events[best]
	do, undo := actions(e)
	st := Step{Index: c.next, Event: best, Occurrence: c.occ[best], Undo: c.undo[best], At: bestAt, Action: do}
	if st.Undo {
		st.Action = undo
	}
	c.next++
	if e.For > 0 && !c.undo[best] {
		c.undo[best] = true
	} else {
		c.undo[best] = false
		c.occ[best]++
	}
	return st, true
}

// Step returns the schedule's i-th step; false past the last.
func (s *Schedule) Step(i int) (Step, bool) {
	c := s.Cursor()
	for {
		st, ok := c.Next()
		if !ok || st.Index == i {
			return st, ok
		}
	}
}

// Steps returns the steps from..to-1 (fewer past the last).
func (s *Schedule) Steps(from, to int) []Step {
	var out []Step
	c := s.Cursor()
	for {
		st, ok := c.Next()
		if !ok || st.Index >= to {
			return out
		}
		if st.Index >= from {
			out = append(out, st)
		}
	}
}

// Superseded says, of steps that are due at once (a runner that was not
// running, or fell behind, finds them all past their time), which a later
// one of them makes moot: every subject it sets is set again later. The
// others are carried out in order, and the lab ends where the schedule
// says, without replaying a flap's every beat.
func Superseded(steps []Step) []bool {
	out := make([]bool, len(steps))
	later := map[string]bool{}
	for i := len(steps) - 1; i >= 0; i-- {
		subj := steps[i].Action.Subjects()
		moot := len(subj) > 0
		for _, s := range subj {
			if !later[s] {
				moot = false
			}
		}
		out[i] = moot
		for _, s := range subj {
			later[s] = true
		}
	}
	return out
}

// State is what a timeline's steps intend of the lab, by subject: which
// cables are pulled, which partitions are in force, which interfaces have
// an impairment of the timeline's. A subject no step set is absent.
type State struct {
	// Cables: true pulled, false plugged in.
	Cables map[string]bool
	// Partitions: the partition in force, nil healed.
	Partitions map[string]*topology.PartitionSpec
	// Impair: the impairment set, nil the file's.
	Impair map[string]*topology.Impair
}

// Intended is the state the steps leave, carried out in order.
func Intended(steps []Step) State {
	st := State{Cables: map[string]bool{}, Partitions: map[string]*topology.PartitionSpec{}, Impair: map[string]*topology.Impair{}}
	for _, s := range steps {
		a := s.Action
		switch a.Kind {
		case topology.EventLinkDown, topology.EventLinkUp:
			for _, k := range a.Interfaces {
				st.Cables[k] = a.Kind == topology.EventLinkDown
			}
		case topology.EventPartition:
			st.Partitions[a.Partition.Name] = a.Partition
		case topology.EventHeal:
			for _, n := range a.Heal {
				st.Partitions[n] = nil
			}
		case topology.EventImpair:
			for _, k := range a.Interfaces {
				if im, ok := a.Impair[k]; ok {
					st.Impair[k] = &im
				} else {
					st.Impair[k] = nil
				}
			}
		}
	}
	return st
}

// Pulled lists the cables the state holds pulled, sorted.
func (st State) Pulled() []string {
	var out []string
	for k, down := range st.Cables {
		if down {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// InForce lists the names of the partitions the state holds in force,
// sorted.
func (st State) InForce() []string {
	var out []string
	for n, p := range st.Partitions {
		if p != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Touched lists every subject the timeline's events set (for a stop that
// gives the file's state back): cables, partitions it makes, interfaces it
// impairs.
func Touched(events []*topology.Event) (cables, partitions, impaired []string) {
	add := func(list []string, v ...string) []string {
		for _, x := range v {
			if !slices.Contains(list, x) {
				list = append(list, x)
			}
		}
		return list
	}
	for _, e := range events {
		cables = add(cables, e.LinkDown...)
		cables = add(cables, e.LinkUp...)
		if e.Partition != nil {
			partitions = add(partitions, e.Partition.Name)
		}
		impaired = add(impaired, e.ImpairNames()...)
	}
	return cables, partitions, impaired
}
