package apply

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// fakeDriver records the actions applyPlan hands it, and how many ran at
// once, and fails the ones it is told to.
type fakeDriver struct {
	mu       sync.Mutex
	ran      []string
	running  int
	maxAtNow int
	fail     map[string]bool
	hold     time.Duration // each action takes this long, so overlaps show
}

func (f *fakeDriver) run(a plan.Action) error {
	f.mu.Lock()
	f.running++
	f.maxAtNow = max(f.maxAtNow, f.running)
	f.mu.Unlock()
	time.Sleep(f.hold)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	f.ran = append(f.ran, a.String())
	if f.fail[a.String()] {
		return errors.New("refused")
	}
	return nil
}

// fakeSession is a session whose actions go to the fake driver: no root,
// no kernel, no Open vSwitch.
func fakeSession(t *testing.T, f *fakeDriver) *Session {
	t.Helper()
	s := New(Config{Lab: "fake", Store: store.New(t.TempDir())}, &state.Journal{Lab: "fake"})
	s.run = f.run
	s.fuse = false
	return s
}

func addNS(names ...string) plan.Plan {
	var p plan.Plan
	for _, n := range names {
		p = append(p, plan.Action{Step: plan.AddNamespace{NS: n}})
	}
	return p
}

func linkUp(ns, link string) plan.Action {
	return plan.Action{Step: plan.SetLink{NS: ns, Link: link, Up: true}}
}

// A stretch of one kind of action runs side by side across namespaces, the
// actions of one namespace in their order, and the next kind only after.
func TestApplyPlanOrder(t *testing.T) {
	f := &fakeDriver{hold: 20 * time.Millisecond}
	s := fakeSession(t, f)
	p := append(addNS("a", "b", "c", "d"), linkUp("a", "x"), linkUp("a", "y"), linkUp("b", "x"))
	n, err := s.Run(p, Options{Quiet: true})
	if err != nil || n != len(p) {
		t.Fatalf("applyPlan = %d, %v; want %d, nil", n, err, len(p))
	}
	if f.maxAtNow < 2 {
		t.Errorf("at most %d actions ran at once; the four namespaces should go side by side", f.maxAtNow)
	}
	pos := func(a plan.Action) int { return slices.Index(f.ran, a.String()) }
	for _, a := range addNS("a", "b", "c", "d") {
		if pos(a) > pos(linkUp("b", "x")) || pos(a) > pos(linkUp("a", "x")) {
			t.Errorf("%s ran after a link of the next step: %q", a, f.ran)
		}
	}
	if pos(linkUp("a", "x")) > pos(linkUp("a", "y")) {
		t.Errorf("one namespace's actions out of order: %q", f.ran)
	}
}

// Up stops at the first failed step and returns its error; what came
// after it never runs.
func TestApplyPlanStopsAtFailure(t *testing.T) {
	p := append(addNS("a", "b"), linkUp("a", "x"))
	f := &fakeDriver{fail: map[string]bool{p[1].String(): true}}
	s := fakeSession(t, f)
	n, err := s.Run(p, Options{Quiet: true})
	if err == nil || !strings.Contains(err.Error(), p[1].String()) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("applyPlan error = %v; want the failed action named", err)
	}
	// The other namespace of that step may or may not have started first.
	if n > 1 {
		t.Errorf("applyPlan reports %d actions done, want at most 1", n)
	}
	if slices.Contains(f.ran, p[2].String()) {
		t.Errorf("the step after a failure ran: %q", f.ran)
	}
}

// Down goes on past failed actions and reports every one.
func TestApplyPlanKeepGoing(t *testing.T) {
	p := append(addNS("a", "b", "c"), linkUp("a", "x"))
	f := &fakeDriver{fail: map[string]bool{p[0].String(): true, p[2].String(): true}}
	s := fakeSession(t, f)
	var mu sync.Mutex
	var done []string
	n, err := s.Run(p, Options{Quiet: true, KeepGoing: true, Done: func(a plan.Action) {
		mu.Lock()
		defer mu.Unlock()
		done = append(done, a.String())
	}})
	if n != 2 || len(f.ran) != len(p) {
		t.Errorf("applyPlan = %d done of %d run; want 2 of %d", n, len(f.ran), len(p))
	}
	for _, a := range []plan.Action{p[0], p[2]} {
		if err == nil || !strings.Contains(err.Error(), a.String()) {
			t.Errorf("error %v does not name %s", err, a)
		}
	}
	slices.Sort(done)
	want := []string{p[1].String(), p[3].String()}
	slices.Sort(want)
	if !slices.Equal(done, want) {
		t.Errorf("done called for %q, want %q", done, want)
	}
}

// The after-action hook (the crash suites' seam) sees every count once.
func TestApplyPlanAfterAction(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	f := &fakeDriver{}
	s := fakeSession(t, f)
	after := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, n)
	}
	p := append(addNS("a", "b", "c"), linkUp("a", "x"), linkUp("c", "y"))
	if _, err := s.Run(p, Options{Quiet: true, After: after}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []int{1, 2, 3, 4, 5}) {
		t.Errorf("after-action counts %v, want 1..5", seen)
	}
}

// recorder notes what happened, from concurrent actions, and lists it in
// order.
func recorder() (note func(string), noted func() []string) {
	var mu sync.Mutex
	var order []string
	note = func(what string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, what)
	}
	noted = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
	return note, noted
}

// Work left running by an action (a bridge ovs-vswitchd is still
// deleting) is waited for at the end of the plan, after the other actions,
// and its error is reported.
func TestApplyPlanWaitsForPending(t *testing.T) {
	f := &fakeDriver{}
	s := fakeSession(t, f)
	note, noted := recorder()
	s.run = func(a plan.Action) error {
		note(a.String())
		if d, ok := a.Step.(plan.DelBridge); ok {
			s.mu.Lock()
			s.pending = append(s.pending, func() error { note("wait"); return fmt.Errorf("bridge %s lingers", d.Bridge) })
			s.mu.Unlock()
		}
		return nil
	}
	p := plan.Plan{{Step: plan.DelBridge{Bridge: "br"}}, {Step: plan.DelNamespace{NS: "a"}}}
	_, err := s.Run(p, Options{Quiet: true, KeepGoing: true})
	if err == nil || !strings.Contains(err.Error(), "bridge br lingers") {
		t.Errorf("applyPlan error = %v; want the wait's", err)
	}
	if order := noted(); len(order) != 3 || order[2] != "wait" {
		t.Errorf("order %q; want the wait last", order)
	}
	if len(s.pending) != 0 {
		t.Errorf("%d waits left pending", len(s.pending))
	}
}

// Ports ovs-vswitchd is still opening (startPorts) are waited for before
// the first action that may need them, not before those that do not
// (beforePorts); with Unsettled, what is left is the caller's (Settle). An
// error found then is reported, and stops the plan as an action's would.
func TestApplyPlanSettlesPorts(t *testing.T) {
	addPorts := plan.Action{Step: plan.AddPorts{Bridge: "br", Ports: []plan.Port{{Name: "p1"}}}}
	addAddr := plan.Action{Step: plan.AddAddr{NS: "a", Link: "eth0", Addr: netip.MustParsePrefix("10.0.0.1/24")}}
	hosts := plan.Action{Step: plan.SetHosts{}}
	flows := plan.Action{Step: plan.SetFlows{Bridge: "br"}}
	for _, tc := range []struct {
		name      string
		p         plan.Plan
		unsettled bool
		fail      bool     // the ports' check fails
		want      []string // the actions (by kind) and "settled", in order
	}{
		{"before a flow", plan.Plan{addPorts, addAddr, hosts, flows}, false, false, []string{"add-ports", "add-addr", "set-hosts", "settled", "set-flows"}},
		{"failed, before a flow", plan.Plan{addPorts, addAddr, flows}, false, true, []string{"add-ports", "add-addr", "settled"}},
		{"at the end", plan.Plan{addPorts, addAddr}, false, true, []string{"add-ports", "add-addr", "settled"}},
		{"left to the caller", plan.Plan{addPorts, addAddr}, true, true, []string{"add-ports", "add-addr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := fakeSession(t, &fakeDriver{})
			note, noted := recorder()
			s.run = func(a plan.Action) error {
				note(string(a.Op()))
				if _, ok := a.Step.(plan.AddPorts); ok {
					s.mu.Lock()
					s.settling = append(s.settling, func(observe bool) error {
						if observe {
							note("settled, observing")
						} else {
							note("settled")
						}
						if tc.fail {
							return errors.New("port p1: no ofport")
						}
						return nil
					})
					s.mu.Unlock()
				}
				return nil
			}
			_, err := s.Run(tc.p, Options{Quiet: true, Unsettled: tc.unsettled})
			if order := noted(); !slices.Equal(order, tc.want) {
				t.Errorf("order %q, want %q", order, tc.want)
			}
			if tc.unsettled {
				if err != nil {
					t.Errorf("Run: %v; the ports are the caller's to settle", err)
				}
				err = s.SettleObserving()
				if order := noted(); !slices.Equal(order, append(tc.want, "settled, observing")) {
					t.Errorf("after Settle: order %q", order)
				}
			}
			if tc.fail != (err != nil) || err != nil && !strings.Contains(err.Error(), "no ofport") {
				t.Errorf("error %v, want the ports' (%v)", err, tc.fail)
			}
			if err := s.Settle(); err != nil {
				t.Errorf("second Settle: %v; nothing is left", err)
			}
		})
	}
}

// Only system ports settle later: ovs-vswitchd makes an internal port's
// device, and a port that may fall back from AF_XDP needs its answer.
func TestSettlesLater(t *testing.T) {
	for _, tc := range []struct {
		ports []plan.Port
		want  bool
	}{
		{[]plan.Port{{Name: "a"}, {Name: "b", Type: ovs.PortTypeSystem}}, true},
		{[]plan.Port{{Name: "a"}, {Name: "b", Type: topology.PortInternal}}, false},
		{[]plan.Port{{Name: "a", Type: ovs.PortTypeAFXDP, Auto: true}}, false},
		{[]plan.Port{{Name: "a", Type: ovs.PortTypeAFXDPNonPMD}}, false},
	} {
		if got := settlesLater(tc.ports); got != tc.want {
			t.Errorf("settlesLater(%+v) = %v, want %v", tc.ports, got, tc.want)
		}
	}
}

// Every kind of action has a handler, and nothing else does: a kind added to
// the plan without one fails here, not in the middle of an up.
func TestEveryKindHasAHandler(t *testing.T) {
	for _, op := range plan.Ops() {
		if handlers[op].run == nil {
			t.Errorf("kind %s has no handler", op)
		}
	}
	for op := range handlers {
		if !slices.Contains(plan.Ops(), op) {
			t.Errorf("handler of %s, which is no kind of the plan", op)
		}
	}
}

// The journal's intents: what an up will create is recorded, before it
// runs, for every kind that creates something down must find.
func TestRecordIntents(t *testing.T) {
	route := state.Route{To: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("10.0.0.2")}
	p := plan.Plan{
		{Step: plan.AddNamespace{NS: "a"}},
		{Step: plan.AddVeth{NS: "a", Link: "e0", PeerNS: "host", Peer: "pa"}},
		{Step: plan.AddLinuxBridge{NS: "host", Link: "lx"}},
		{Step: plan.AddBridge{Bridge: "br"}},
		{Step: plan.SetNAT{NS: "host"}},
		{Step: plan.SetLoss{NS: "a"}},
		{Step: plan.SetQdisc{NS: "a", Link: "e0"}},
		{Step: plan.ReplaceRoute{NS: "host", Route: &route}},
		{Step: plan.ReplaceRoute{NS: "a", Route: &route}},
		{Step: plan.StartTimeline{Name: "new", Events: []*topology.Event{{LinkDown: []string{"a/e0"}}}, Hash: "h"}},
		{Step: plan.StartTimeline{Name: "old", Hash: "o"}},
	}
	j := &state.Journal{Lab: "l"}
	RecordIntents(p, j)
	if len(j.Timelines) != 1 || j.Timelines[0].Name != "new" || j.Timelines[0].Hash != "h" || !j.Timelines[0].Running() {
		t.Errorf("timelines journaled: %+v", j.Timelines)
	}
	got := fmt.Sprint(j.Namespaces, j.HostLinks, j.Bridges, j.NAT, j.Loss, j.Qdiscs, j.HostRoutes)
	want := fmt.Sprint([]string{"a"}, []string{"lx", "pa"}, []string{"br"}, []string{"host"}, []string{"a"}, []string{"a"}, []state.Route{route})
	if got != want {
		t.Errorf("journal %s, want %s", got, want)
	}
}

// SettleObserving has the last of the waits read the switch (the one whose
// transaction comes last, so that nothing is sent between its answer and
// the observation it serves); Settle none.
func TestSettleObservingLastWaitOnly(t *testing.T) {
	for _, observing := range []bool{false, true} {
		s := fakeSession(t, &fakeDriver{})
		var got []bool
		for range 3 {
			s.settling = append(s.settling, func(observe bool) error {
				got = append(got, observe)
				return nil
			})
		}
		settle := s.Settle
		if observing {
			settle = s.SettleObserving
		}
		if err := settle(); err != nil {
			t.Fatal(err)
		}
		if want := []bool{false, false, observing}; !slices.Equal(got, want) {
			t.Errorf("observing %v: waits observed %v, want %v", observing, got, want)
		}
		if err := s.SettleObserving(); err != nil || len(got) != 3 {
			t.Errorf("again: %v, %d waits run; want none left", err, len(got))
		}
	}
}
