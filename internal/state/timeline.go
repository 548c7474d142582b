package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// Timeline is a timeline the lab runs or ran (Journal.Timelines): its
// events as it was started with them, when its clock started, and whether
// it ended. It is written before its runner starts, so up restarts a
// runner that died and down stops one a crash left; the state its events
// set is the journal's like any event's (LinksDown, Partitions, Impair).
type Timeline struct {
	Name   string            `json:"name"`
	Events []*topology.Event `json:"events"`
	// Hash is the events': the same timeline asked for again is up to
	// date, another one under the name is refused while it runs.
	Hash string `json:"hash"`
	// Start is when the timeline's clock started: its runner's first
	// moment. Zero until then; the events' times count from it, also for
	// a runner restarted after a crash.
	Start time.Time `json:"start,omitzero"`
	// Stopped says `netlab timeline stop` (or a test's cleanup) ended it;
	// Done that every step was carried out. Either way nothing restarts
	// its runner.
	Stopped bool `json:"stopped,omitempty"`
	Done    bool `json:"done,omitempty"`
}

// Running says whether the timeline should have a runner.
func (t *Timeline) Running() bool { return !t.Stopped && !t.Done }

// TimelineHash is what Timeline.Hash holds for events.
func TimelineHash(events []*topology.Event) string {
	b, _ := json.Marshal(events) // events are plain values
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Timeline returns the journal's timeline called name (to change in place).
func (j *Journal) Timeline(name string) *Timeline {
	i := slices.IndexFunc(j.Timelines, func(t Timeline) bool { return t.Name == name })
	if i < 0 {
		return nil
	}
	return &j.Timelines[i]
}

// SetTimeline records a timeline, replacing one of the same name.
func (j *Journal) SetTimeline(t Timeline) {
	if old := j.Timeline(t.Name); old != nil {
		*old = t
		return
	}
	j.Timelines = append(j.Timelines, t)
}

// TimelineProc is a timeline's runner as observed: its supervisor's pid (0
// when none runs), the runner's (0 while none runs), and what the
// supervisor said of it.
type TimelineProc struct {
	Supervisor, PID int
	Restarts        int
	// Exit says how the runner last ended, if it did.
	Exit string
}
