package topology

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The example timelines parse into what they say: durations, repeats,
// default partition names, and impairments made whole over the file's.
func TestTimelineParse(t *testing.T) {
	lab := mustLoad(t, "testdata/good/timelines.yaml")
	if len(lab.Timelines) != 3 {
		t.Fatalf("got %d timelines, want 3", len(lab.Timelines))
	}
	n := lab.Timeline("nemesis")
	if n == nil || n.Start != StartManual || len(n.Events) != 5 {
		t.Fatalf("nemesis: %+v", n)
	}
	e := n.Events[0]
	if e.At != 10*time.Second || e.For != 20*time.Second || e.Kind() != EventPartition || e.Occurrences() != 1 {
		t.Errorf("event 0: %+v", e)
	}
	if p := e.Partition; p.Name != "minority" || strings.Join(p.A, ",") != "n1" || strings.Join(p.B, ",") != "n2,n3" || p.OneWay {
		t.Errorf("event 0 partition: %+v", p)
	}
	if e := n.Events[1]; e.Every != 5*time.Second || e.Count != 6 || e.Occurrences() != 6 || strings.Join(e.LinkDown, ",") != "n2/eth0" {
		t.Errorf("event 1: %+v", e)
	}
	im := n.Events[2].Impair
	if len(im) != 2 || im[0].Interface != "n1/eth0" || im[0].Impair != (Impair{Rate: 100e6, Loss: 20}) {
		t.Errorf("n1/eth0: %+v, want the file's rate and the event's loss", im)
	}
	if len(im) != 2 || im[1].Impair != (Impair{Rate: 10e6, Loss: 5}) {
		t.Errorf("host/p3: %+v", im)
	}
	if got := n.Events[2].ImpairNames(); strings.Join(got, " ") != "n1/eth0 host/p3" {
		t.Errorf("impair names %v", got)
	}
	if p := n.Events[3].Partition; p.Name != "nemesis-4" || !p.OneWay || strings.Join(p.A, ",") != "n3" {
		t.Errorf("event 3: default name and one way: %+v", p)
	}
	if h := n.Events[4].Heal; strings.Join(h, ",") != "nemesis-4" {
		t.Errorf("event 4 heal: %v", h)
	}
	f := lab.Timeline("flap")
	if f == nil || f.Start != StartManual || len(f.Events) != 1 || f.Events[0].Occurrences() != -1 || len(f.Events[0].LinkDown) != 2 {
		t.Errorf("flap: %+v", f)
	}
	if u := lab.Timeline("at-up"); u == nil || u.Start != StartUp || u.Events[0].At != 0 || u.Events[0].Kind() != EventLinkUp {
		t.Errorf("at-up: %+v", u)
	}
}

// CheckTimeline checks a timeline made in Go against a lab brought up under
// a prefix: the file's names and the machine's both resolve, partitions get
// their names, and every problem comes back at once.
func TestCheckTimeline(t *testing.T) {
	lab := mustLoad(t, "testdata/good/timelines.yaml")
	if err := ApplyPrefix(lab, "x1-"); err != nil {
		t.Fatal(err)
	}
	good := &Timeline{Name: "t1", Events: []*Event{
		{LinkDown: []string{"n1/eth0", "x1-n2/eth0", "host/p3", "host/x1-p1"}},
		{At: time.Second, Partition: &PartitionSpec{A: []string{"n1"}, B: []string{"x1-n2"}}},
		{At: 2 * time.Second, Impair: []InterfaceImpair{{Interface: "n3/eth0", Impair: Impair{Loss: 5}}}, For: time.Second},
	}}
	if err := lab.CheckTimeline(good); err != nil {
		t.Fatalf("good timeline: %v", err)
	}
	if got := good.Events[1].Partition.Name; got != "t1-2" {
		t.Errorf("default partition name %q, want t1-2", got)
	}
	bad := &Timeline{Name: "T", Start: "later", Events: []*Event{
		{},
		{LinkDown: []string{"n9/eth0"}},
		{Every: time.Millisecond, LinkUp: []string{"n1/eth0"}},
		{Partition: &PartitionSpec{A: []string{"n1"}, B: []string{"n1"}}},
		nil,
	}}
	err := lab.CheckTimeline(bad)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %v, want an ErrorList", err)
	}
	for _, want := range []string{
		`timelines.T: timeline name "T"`,
		`timelines.T.start: want up or manual, got "later"`,
		`timelines.T.events[0]: want exactly one of`,
		`timelines.T.events[1].link-down: no interface n9/eth0`,
		`timelines.T.events[2].every: 1ms is out of range`,
		`timelines.T.events[3].partition.b: namespace n1 is in both groups`,
		`timelines.T.events[4]: no event`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

// checkTimelineInvariants holds what every parsed timeline keeps, for
// TestGood and the fuzzers.
func checkTimelineInvariants(t *testing.T, lab *Lab) {
	t.Helper()
	names := map[string]bool{}
	for _, tl := range lab.Timelines {
		if checkTimelineName(tl.Name) != "" || names[tl.Name] {
			t.Errorf("timeline name %q accepted", tl.Name)
		}
		names[tl.Name] = true
		if tl.Start != StartManual && tl.Start != StartUp {
			t.Errorf("timeline %s: start %q", tl.Name, tl.Start)
		}
		if len(tl.Events) == 0 {
			t.Errorf("timeline %s has no event", tl.Name)
		}
		for i, e := range tl.Events {
			if e.Kind() == "" {
				t.Errorf("%s event %d: no single action: %+v", tl.Name, i, e)
			}
			if e.At < 0 || e.At > MaxEventTime || e.Every != 0 && e.Every < MinEventPeriod || e.For != 0 && e.For < MinEventPeriod {
				t.Errorf("%s event %d: times out of range: %+v", tl.Name, i, e)
			}
			if e.Every != 0 && e.For >= e.Every || e.Count < 0 || e.Count > MaxEventCount || e.Count > 1 && e.Every == 0 {
				t.Errorf("%s event %d: repeats wrong: %+v", tl.Name, i, e)
			}
			if p := e.Partition; p != nil && (!ValidPartitionName(p.Name) || len(p.A) == 0 || len(p.B) == 0) {
				t.Errorf("%s event %d: partition %+v", tl.Name, i, p)
			}
			for _, ref := range append(append([]string{}, e.LinkDown...), e.LinkUp...) {
				if msg := lab.checkCable(ref); msg != "" {
					t.Errorf("%s event %d: %s", tl.Name, i, msg)
				}
			}
			for _, ii := range e.Impair {
				ns, link, _ := strings.Cut(ii.Interface, "/")
				if !lab.hasImpairable(ns, link) {
					t.Errorf("%s event %d: impair of unknown %s", tl.Name, i, ii.Interface)
				}
			}
		}
	}
}

// FuzzTimeline feeds the events of a timeline, as YAML, into a small lab:
// the parser never panics, errors are well formed, and a timeline it takes
// keeps every invariant.
func FuzzTimeline(f *testing.F) {
	for _, s := range []string{
		"[{at: 10s, partition: {a: [n1], b: [n2, n3], name: minority}, for: 20s}]",
		"[{at: 40s, link-down: n2/eth0, for: 1s, every: 5s, count: 6}]",
		"[{at: 75s, impair: {n1/eth0: {loss: 20%}, host/p3: {loss: 5%, rate: 10mbit}}, for: 30s}]",
		"{start: up, events: [{at: 0, link-up: n2/eth0}, {heal: [a, b]}]}",
		"[{every: 500ms, link-down: [n3/eth0, host/p1], for: 200ms}]",
		"[{at: 1s, partition: {a: n3, b: [n1, n2], one-way: true}}, {at: 2s, heal: t-1}]",
		"[{every: 1s, for: 1s, link-down: n1/eth0}]",
		"[{impair: {n1/eth0: {delay: 20ms, jitter: 30ms}}}]",
		"[{at: 1h, count: 1, link-down: n1/eth0}]",
	} {
		f.Add(s)
	}
	const head = `name: fz
bridges:
  sw: {type: linux}
namespaces:
  n1: {interfaces: {eth0: {peer: sw/p1, addresses: [10.0.0.1/24]}}}
  n2: {interfaces: {eth0: {peer: sw/p2, addresses: [10.0.0.2/24]}}}
  n3: {interfaces: {eth0: {peer: sw/p3, addresses: [10.0.0.3/24]}}}
timelines:
  t: `
	f.Fuzz(func(t *testing.T, body string) {
		if strings.ContainsAny(body, "\n\r") {
			return // one line: the value of t
		}
		lab, err := Parse("fuzz.yaml", []byte(head+body+"\n"))
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || lab != nil {
				t.Fatalf("error %T %v with lab %v", err, err, lab)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("malformed error %+v", e)
				}
			}
			return
		}
		checkInvariants(t, lab)
	})
}
