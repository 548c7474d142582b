package plan

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Timelines are desired state like services: a timeline the journal holds
// as running wants a live runner, and one that ended (done, stopped) or
// that the journal does not hold wants none. A timeline of the file with
// start: up is started by the up that finds no record of it, once: when it
// is done or stopped, the record stays and up leaves it so.

// timelines starts the runners the lab's timelines want: a running
// timeline's whose runner is gone (a crash, a killed supervisor), and the
// file's start: up timelines the journal has no record of.
func (p *planner) timelines() {
	if p.j != nil {
		for _, t := range p.j.Timelines {
			if !t.Running() {
				continue
			}
			have := p.snap.Timelines[t.Name]
			if have != nil && have.Supervisor != 0 {
				continue
			}
			why := ""
			if !t.Start.IsZero() {
				// Its clock started: the runner resumes where it was.
				why = "its runner was not running"
				if have != nil && have.Exit != "" {
					why += ": " + have.Exit
				}
			}
			p.emit(StartTimeline{Name: t.Name, Hash: t.Hash, Steps: stepCount(t.Events), Why: why})
		}
	}
	for _, t := range UpTimelines(p.lab, p.j) {
		p.emit(StartTimeline{Name: t.Name, Events: t.Events, Hash: state.TimelineHash(t.Events), Steps: stepCount(t.Events)})
	}
}

// UpTimelines are the file's timelines that up starts: start: up, and not
// in the journal yet (one there was checked when it started). Their impair
// events are checked against the kernel by the plan, a manual timeline's
// when it starts.
func UpTimelines(lab *topology.Lab, j *state.Journal) []*topology.Timeline {
	var out []*topology.Timeline
	for _, t := range lab.Timelines {
		if t.Start == topology.StartUp && (j == nil || j.Timeline(t.Name) == nil) {
			out = append(out, t)
		}
	}
	return out
}

// timelineStops stops the runners of timelines that were stopped or that
// the journal does not hold (a runner a crashed stop left). A done
// timeline's runner is on its way out: it journals the timeline done, then
// ends by itself.
func (p *planner) timelineStops() {
	for _, name := range state.SortedNames(p.snap.Timelines) {
		if p.snap.Timelines[name].Supervisor == 0 {
			continue
		}
		var t *state.Timeline
		if p.j != nil {
			t = p.j.Timeline(name)
		}
		if t == nil || t.Stopped {
			p.emit(StopTimeline{Name: name})
		}
	}
}

// TimelineEvents is the part of a plan that starts and stops timelines'
// runners: what `netlab timeline` runs.
func TimelineEvents(p Plan) Plan {
	var out Plan
	for _, a := range p {
		if kinds[a.Op()].event == timelineEvent {
			out = append(out, a)
		}
	}
	return out
}

// TimelineFeatureError names each impair event of the timelines that needs
// what this kernel lacks (the netem qdisc for a delay, say), at its place,
// as an impair: block of the file would be: the same check (and message)
// as ImpairFeatureError's. nil when every event can be carried out, or
// support was not probed.
func TimelineFeatureError(lab *topology.Lab, timelines []*topology.Timeline, sup *state.ImpairSupport) error {
	var all topology.ErrorList
	var features []string
	for _, t := range timelines {
		for _, e := range t.Events {
			for _, ii := range e.Impair {
				k := ii.Interface
				ns, link, _ := strings.Cut(k, "/")
				err := ImpairFeatureError(&topology.Lab{File: lab.File}, map[string]map[string]topology.Impair{ns: {link: ii.Impair}}, sup)
				var fe *topology.FeatureError
				if !errors.As(err, &fe) {
					continue
				}
				for _, x := range fe.Errs {
					at := ii.Pos
					if at == (topology.Pos{}) {
						at = e.Place(topology.EventImpair)
					}
					all = append(all, &topology.Error{File: lab.File, Pos: at, Path: e.Path + ".impair[" + strconv.Quote(k) + "]", Msg: x.Msg})
				}
				for _, f := range strings.Split(fe.Feature, ", ") {
					if !slices.Contains(features, f) {
						features = append(features, f)
					}
				}
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	return &topology.FeatureError{Feature: strings.Join(features, ", "), Errs: all}
}
