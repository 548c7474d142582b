package apply

import (
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
)

// A timeline's runner, through the supervisor of the lab's processes. A
// timeline new from the file is journaled before its runner starts, so a
// crash in between leaves a timeline up restarts and down finds.
var timelineHandlers = map[plan.Op]handler{
	plan.OpStartTimeline: on(func(s *Session, a plan.StartTimeline) error {
		return s.procs.StartTimeline(a.Name)
	}).journaling(func(j *state.Journal, a plan.Action) {
		st := a.Step.(plan.StartTimeline)
		if st.Events != nil {
			j.SetTimeline(state.Timeline{Name: st.Name, Events: st.Events, Hash: st.Hash})
		}
	}),
	plan.OpStopTimeline: on(func(s *Session, a plan.StopTimeline) error {
		return s.procs.StopTimeline(a.Name)
	}),
}
