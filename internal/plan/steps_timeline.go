package plan

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/timeline"
	"github.com/netlab-dev/netlab/topology"
)

// The kinds of a lab's timelines: their runners, supervised processes of
// the lab (`netlab timeline-run` under `netlab supervise`).
const (
	OpStartTimeline Op = "start-timeline"
	OpStopTimeline  Op = "stop-timeline"
)

// timelineKinds are their rows of the table of kinds. A timeline's runner
// stops first in a down: it would change the lab while it goes.
var timelineKinds = map[Op]kind{
	OpStartTimeline: {event: timelineEvent},
	OpStopTimeline:  {down: 1, event: timelineEvent},
}

// StartTimeline starts the supervised runner of a timeline, which carries
// out its events at their times through the engine (each a locked,
// journaled change) and resumes where its event log ends.
type StartTimeline struct {
	Name string `json:"name"`
	// Events are those of a timeline the file starts with up that the
	// journal does not have yet: journaled before the runner starts. Nil
	// for a timeline the journal holds.
	Events []*topology.Event `json:"events,omitempty"`
	Hash   string            `json:"hash"`
	// Steps counts the timeline's steps; -1: it runs until stopped.
	Steps int `json:"steps"`
	// Why it is started again: "its runner had exited with status 2".
	Why string `json:"why,omitempty"`
}

func (StartTimeline) Op() Op          { return OpStartTimeline }
func (s StartTimeline) Scope() string { return "timeline:" + s.Name }
func (StartTimeline) sealed()         {}
func (s StartTimeline) Command(lab string) string {
	steps := fmt.Sprintf("%d steps", s.Steps)
	if s.Steps < 0 {
		steps = "until stopped"
	}
	c := fmt.Sprintf("netlab supervise /run/netlab/labs/%s/timelines/%s.json &   # runs netlab timeline-run: timeline %s, %s", lab, s.Name, s.Name, steps)
	if s.Why != "" {
		c += "; " + s.Why
	}
	return c
}

// StopTimeline ends a timeline's runner (its supervisor tells it to stop;
// it finishes the step it is carrying out).
type StopTimeline struct {
	Name string `json:"name"`
}

func (StopTimeline) Op() Op          { return OpStopTimeline }
func (s StopTimeline) Scope() string { return "timeline:" + s.Name }
func (StopTimeline) sealed()         {}
func (s StopTimeline) Command(lab string) string {
	return fmt.Sprintf("kill $(cat /run/netlab/labs/%s/timelines/%s.pid)   # the runner finishes its step and ends", lab, s.Name)
}
func (s StopTimeline) Removed(string) string { return "timeline " + s.Name + " (its runner stopped)" }

// stepCount is how many steps a timeline has (-1: endless).
func stepCount(events []*topology.Event) int { return timeline.New(events).Len() }
