package plan

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

const timelinesLab = `
name: tl
bridges:
  sw: {type: linux}
namespaces:
  n1: {interfaces: {eth0: {peer: sw/p1, addresses: [10.0.0.1/24]}}}
  n2: {interfaces: {eth0: {peer: sw/p2, addresses: [10.0.0.2/24]}}}
timelines:
  flap:
    start: up
    events:
      - {every: 2s, count: 5, link-down: n1/eth0, for: 500ms}
  cut:
    - {at: 10s, partition: {a: [n1], b: [n2]}, for: 5s}
      # manual: only netlab timeline starts it
`

// A timeline with start: up is started by the up that finds no record of
// it, last, after the services; a manual one is not. A running timeline
// whose runner died is started again with the reason; one that ended
// (done, stopped) is not, and a runner that outlived its timeline's end
// is stopped. Down stops runners first. Golden plans.
func TestTimelinesPlan(t *testing.T) {
	lab := parse(t, "tl.yaml", timelinesLab)
	m := newMachine()
	p := m.converge(t, lab)
	last := p[len(p)-1]
	if s, ok := last.Step.(StartTimeline); !ok || s.Name != "flap" || s.Steps != 10 || len(s.Events) != 1 {
		t.Fatalf("up's last action %s, want the flap's start", last)
	}
	if tp := TimelineEvents(p); len(tp) != 1 {
		t.Errorf("timeline actions:\n%s", tp)
	}
	rec := m.j.Timeline("flap")
	if rec == nil || !rec.Running() || rec.Hash != state.TimelineHash(lab.Timeline("flap").Events) || m.j.Timeline("cut") != nil {
		t.Fatalf("journal: %+v", m.j.Timelines)
	}

	// The runner died: started again, resuming the journal's timeline.
	rec.Start = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	m.snap.Timelines["flap"] = &state.TimelineProc{Exit: "killed by SIGKILL (killed)"}
	p = m.converge(t, lab)
	golden(t, "timeline-restart.plan", p.String())
	if s, ok := p[0].Step.(StartTimeline); len(p) != 1 || !ok || s.Events != nil || !strings.Contains(s.Why, "killed by SIGKILL") {
		t.Errorf("restart:\n%s", p)
	}

	// Done: its runner ends by itself; nothing restarts it once gone.
	rec.Done = true
	if p := m.converge(t, lab); len(p) != 0 {
		t.Errorf("a done timeline's runner, still there:\n%s", p)
	}
	delete(m.snap.Timelines, "flap")
	if p := m.converge(t, lab); len(p) != 0 {
		t.Errorf("a done timeline is started again:\n%s", p)
	}
	// Stopped: a runner still there (a stop cut short) is stopped.
	rec.Done, rec.Stopped = false, true
	m.snap.Timelines["flap"] = &state.TimelineProc{Supervisor: 5151, PID: 5152}
	p = m.converge(t, lab)
	golden(t, "timeline-stopped.plan", p.String())
	if len(p) != 1 || p[0].Op() != OpStopTimeline {
		t.Errorf("a stopped timeline's runner:\n%s", p)
	}

	// A timeline netlab timeline started (the journal's, not the file's).
	m.j.SetTimeline(state.Timeline{Name: "cut", Events: lab.Timeline("cut").Events, Hash: "c"})
	p = m.converge(t, lab)
	if len(p) != 1 || p[0].String() != "netlab supervise /run/netlab/labs/tl/timelines/cut.json &   # runs netlab timeline-run: timeline cut, 2 steps" {
		t.Errorf("start of a journaled timeline:\n%s", p)
	}
	down, _ := Down(DownInput{Lab: "tl", Journal: m.j, Snapshot: m.snap})
	golden(t, "timeline.down", down.String())
	if down[0].Op() != OpStopTimeline {
		t.Errorf("down does not stop the timeline first:\n%s", down)
	}
}

// An impair event this kernel cannot carry out (a delay without netem) of
// a timeline up starts fails the plan at the event's place, as an impair:
// block would; a manual timeline's is refused when it starts.
func TestTimelineFeatures(t *testing.T) {
	lab := parse(t, "tl.yaml", timelinesLab+`  slow:
    start: up
    events:
      - {at: 1s, impair: {n1/eth0: {delay: 20ms, loss: 5%}, host/p2: {rate: 1mbit}}}
`)
	m := newMachine()
	m.snap.Impair = &state.ImpairSupport{TBF: true, NftEgress: true}
	_, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev})
	var fe *topology.FeatureError
	if !errors.As(err, &fe) || fe.Feature != "sch_netem" || len(fe.Errs) != 1 {
		t.Fatalf("got %v, want a FeatureError for sch_netem", err)
	}
	if got := fe.Errs[0].Error(); !strings.HasPrefix(got, `tl.yaml:19:27: timelines.slow.events[0].impair["n1/eth0"]: delay needs the kernel's netem qdisc`) {
		t.Errorf("error %q", got)
	}
	// Once started (journaled), or when manual, netlab timeline start
	// checks it instead.
	lab.Timeline("slow").Start = topology.StartManual
	if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev}); err != nil {
		t.Errorf("a manual timeline fails the plan: %v", err)
	}
	lab.Timeline("slow").Start = topology.StartUp
	m.snap.Impair.Netem = true
	if _, err := Make(Input{Lab: lab, Snapshot: m.snap, Journal: m.j, Datapath: topology.DatapathNetdev}); err != nil {
		t.Errorf("with netem: %v", err)
	}
}
