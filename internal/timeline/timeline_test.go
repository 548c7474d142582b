package timeline

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

const s = time.Second
const ms10 = 10 * time.Millisecond

// render writes steps as "AT ACTION" lines, undone ones marked.
func render(steps []Step) string {
	var b strings.Builder
	for _, st := range steps {
		u := ""
		if st.Undo {
			u = " (undo)"
		}
		fmt.Fprintf(&b, "%d %s e%d.%d %s%s\n", st.Index, st.At, st.Event, st.Occurrence, st.Action, u)
	}
	return b.String()
}

func TestScheduleOrder(t *testing.T) {
	part := &topology.PartitionSpec{Name: "minority", A: []string{"n1"}, B: []string{"n2", "n3"}}
	events := []*topology.Event{
		{At: 1 * s, Every: 2 * s, Count: 3, For: 500 * time.Millisecond, LinkDown: []string{"n2/eth0"}},
		{At: 2 * s, Partition: part, For: 1500 * time.Millisecond},
		{At: 3 * s, Impair: []topology.InterfaceImpair{{Interface: "host/p1", Impair: topology.Impair{Rate: 1e6}}, {Interface: "n1/eth0", Impair: topology.Impair{Loss: 20}}}, For: s},
		{At: 5 * s, Heal: []string{"other"}},
	}
	sch := New(events)
	if sch.Len() != 3*2+2+2+1 {
		t.Errorf("Len %d, want 11", sch.Len())
	}
	got := render(sch.Steps(0, 100))
	want := `0 1s e0.0 link-down n2/eth0
1 1.5s e0.0 link-up n2/eth0 (undo)
2 2s e1.0 partition minority: n1 / n2,n3
3 3s e0.1 link-down n2/eth0
4 3s e2.0 impair host/p1: rate 1mbit; n1/eth0: loss 20%
5 3.5s e0.1 link-up n2/eth0 (undo)
6 3.5s e1.0 heal minority (undo)
7 4s e2.0 impair host/p1: the file's; n1/eth0: the file's (undo)
8 5s e0.2 link-down n2/eth0
9 5s e3.0 heal other
10 5.5s e0.2 link-up n2/eth0 (undo)
`
	if got != want {
		t.Errorf("steps:\n%s\nwant:\n%s", got, want)
	}
	if st, ok := sch.Step(6); !ok || st.Action.String() != "heal minority" || !st.Undo {
		t.Errorf("Step(6) = %+v, %v", st, ok)
	}
	if _, ok := sch.Step(11); ok {
		t.Errorf("Step(11) exists past the end")
	}
	if got := render(sch.Steps(9, 20)); !strings.HasPrefix(got, "9 5s") || strings.Count(got, "\n") != 2 {
		t.Errorf("Steps(9, 20):\n%s", got)
	}
}

// An undoing at the same moment as another event's step goes first: a
// flap that plugs its cable back at 1s and pulls it again at 1s ends
// pulled.
func TestScheduleUndoFirst(t *testing.T) {
	events := []*topology.Event{
		{At: 1 * s, LinkDown: []string{"a/e"}},
		{Every: 500 * time.Millisecond, Count: 3, For: 500*time.Millisecond - ms10, LinkDown: []string{"a/e"}},
		{At: 990 * time.Millisecond, LinkUp: []string{"b/e"}, For: ms10},
	}
	got := render(New(events).Steps(0, 10))
	want := `0 0s e1.0 link-down a/e
1 490ms e1.0 link-up a/e (undo)
2 500ms e1.1 link-down a/e
3 990ms e1.1 link-up a/e (undo)
4 990ms e2.0 link-up b/e
5 1s e2.0 link-down b/e (undo)
6 1s e0.0 link-down a/e
7 1s e1.2 link-down a/e
8 1.49s e1.2 link-up a/e (undo)
`
	if got != want {
		t.Errorf("steps:\n%s\nwant:\n%s", got, want)
	}
}

// An event that repeats without a count never ends: the schedule has no
// length, and its steps go on.
func TestScheduleEndless(t *testing.T) {
	sch := New([]*topology.Event{
		{Every: 100 * time.Millisecond, For: 50 * time.Millisecond, LinkDown: []string{"a/e"}},
		{At: 1 * s, Heal: []string{"p"}},
	})
	if sch.Len() != -1 {
		t.Errorf("Len %d, want -1", sch.Len())
	}
	// Step 1000 is the flap's 1000th (the heal at 1s is one of the
	// steps before it): time 500's undoing.
	st, ok := sch.Step(1000)
	if !ok || st.At != 49950*time.Millisecond || !st.Undo || st.Occurrence != 499 {
		t.Errorf("Step(1000) = %v: %+v", ok, st)
	}
}

func steps(actions ...Action) []Step {
	var out []Step
	for i, a := range actions {
		out = append(out, Step{Index: i, Action: a})
	}
	return out
}

func TestSuperseded(t *testing.T) {
	down := func(k ...string) Action { return Action{Kind: topology.EventLinkDown, Interfaces: k} }
	up := func(k ...string) Action { return Action{Kind: topology.EventLinkUp, Interfaces: k} }
	part := Action{Kind: topology.EventPartition, Partition: &topology.PartitionSpec{Name: "p", A: []string{"a"}, B: []string{"b"}}}
	heal := func(n ...string) Action { return Action{Kind: topology.EventHeal, Heal: n} }
	imp := Action{Kind: topology.EventImpair, Interfaces: []string{"a/e"}, Impair: map[string]topology.Impair{"a/e": {Loss: 5}}}
	reset := Action{Kind: topology.EventImpair, Interfaces: []string{"a/e"}}
	got := Superseded(steps(down("a/e"), part, up("a/e"), imp, down("a/e", "b/e"), heal("p", "q"), reset, up("b/e"), heal("q")))
	want := []bool{true, true, true, true, false, false, false, false, false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Superseded = %v, want %v", got, want)
	}
	if got := Superseded(nil); len(got) != 0 {
		t.Errorf("Superseded(nil) = %v", got)
	}
}

// The intended state of the steps is the last word on each subject, and
// the steps a runner carries out after skipping the superseded ones end in
// the same state.
func TestIntended(t *testing.T) {
	part := &topology.PartitionSpec{Name: "m", A: []string{"n1"}, B: []string{"n2"}}
	events := []*topology.Event{
		{Every: 300 * time.Millisecond, Count: 5, For: 100 * time.Millisecond, LinkDown: []string{"n1/eth0"}},
		{At: 200 * time.Millisecond, Every: 400 * time.Millisecond, Count: 3, For: 150 * time.Millisecond, Partition: part},
		{At: 100 * time.Millisecond, Impair: []topology.InterfaceImpair{{Interface: "n3/eth0", Impair: topology.Impair{Loss: 10}}}},
		{At: 1100 * time.Millisecond, LinkDown: []string{"n2/eth0"}},
	}
	all := New(events).Steps(0, 100)
	for n := 0; n <= len(all); n++ {
		prefix := all[:n]
		st := Intended(prefix)
		var kept []Step
		for i, moot := range Superseded(prefix) {
			if !moot {
				kept = append(kept, prefix[i])
			}
		}
		if got := Intended(kept); fmt.Sprint(got.Pulled(), got.InForce(), len(got.Impair)) != fmt.Sprint(st.Pulled(), st.InForce(), len(st.Impair)) {
			t.Errorf("after %d steps: skipping the superseded ends in %v, the schedule in %v", n, got, st)
		}
	}
	st := Intended(all)
	if fmt.Sprint(st.Pulled()) != "[n2/eth0]" || len(st.InForce()) != 0 || st.Impair["n3/eth0"] == nil || st.Impair["n3/eth0"].Loss != 10 {
		t.Errorf("final state: pulled %v, partitions %v, impair %v", st.Pulled(), st.InForce(), st.Impair)
	}
	if st.Cables["n1/eth0"] {
		t.Errorf("n1/eth0 pulled at the end of a flap with for:")
	}
	cables, parts, imp := Touched(events)
	if fmt.Sprint(cables, parts, imp) != "[n1/eth0 n2/eth0] [m] [n3/eth0]" {
		t.Errorf("Touched = %v %v %v", cables, parts, imp)
	}
}

func TestLogRoundTrip(t *testing.T) {
	planned := time.Date(2026, 12, 6, 10, 0, 10, 0, time.UTC)
	e := Entry{Step: 3, Event: 1, Occurrence: 2, Undo: true, Action: "link-up n2/eth0", Planned: planned,
		Started: planned.Add(1234 * time.Microsecond), Finished: planned.Add(15678 * time.Microsecond), Result: Done, Actions: 3}
	line := e.Line()
	want := `{"step":3,"event":1,"occurrence":2,"undo":true,"action":"link-up n2/eth0","result":"done","actions":3,"planned":"2026-12-06T10:00:10.000Z","started":"2026-12-06T10:00:10.001Z","finished":"2026-12-06T10:00:10.015Z","late_ms":1.23,"took_ms":14.44}` + "\n"
	if string(line) != want {
		t.Errorf("line:\n%s\nwant:\n%s", line, want)
	}
	log, err := ParseLog(append(append(line, line...), []byte(`{"step":5,"ev`)...))
	if err != nil || len(log) != 2 {
		t.Fatalf("ParseLog: %d entries, %v", len(log), err)
	}
	got := log[0]
	if got.Step != 3 || !got.Undo || got.Result != Done || !got.Planned.Equal(planned) ||
		got.Late().Round(10*time.Microsecond) != 1230*time.Microsecond || got.Took().Round(10*time.Microsecond) != 14440*time.Microsecond {
		t.Errorf("read back %+v (late %s, took %s)", got, got.Late(), got.Took())
	}
	if Next(log) != 4 || Next(nil) != 0 {
		t.Errorf("Next = %d, %d", Next(log), Next(nil))
	}
	if _, err := ParseLog([]byte("{bad}\n" + string(line))); err == nil {
		t.Errorf("a bad line before the last is not an error")
	}
	if txt := got.Text(); !strings.Contains(txt, "step 3: link-up n2/eth0 (event 1, time 3, undone): done (3 actions)") {
		t.Errorf("Text: %s", txt)
	}
}
