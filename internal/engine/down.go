package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netlab-dev/netlab/internal/apply"
	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// DownResult says what Down removed and what it left alone.
type DownResult struct {
	Removed   []string `json:"removed"`
	LeftAlone []string `json:"left_alone,omitempty"`
	// NotRunning is set when nothing of the lab was found.
	NotRunning bool `json:"not_running"`
}

// Down removes everything of the lab, from the journal and the markers alone:
// no topology file is needed. Like up it observes, plans (plan.Down: what
// to remove, in what order, and what to leave alone) and applies with the
// same loop; unlike up it goes on past a failed action, removing as much as
// it can, and reports every error. It never removes an object that does not
// carry the lab's marker (or that the journal names and an interrupted run
// left unmarked).
func (e *Engine) Down(lab string) (*DownResult, error) {
	// Open vSwitch is reached while the timelines stop and the journal is
	// read: connecting changes nothing and needs nothing of the lab, and it
	// is a look at the daemons' pidfiles and a round trip on the way to the
	// deletions.
	type connection struct {
		c   *ovs.Client
		err error
	}
	connecting := make(chan connection, 1)
	go func() {
		c, err := e.connectOVS(false)
		connecting <- connection{c, err}
	}()
	connected := sync.OnceValue(func() connection { return <-connecting })
	owned := false // by the session, which closes it
	defer func() {
		if c := connected(); !owned && c.c != nil {
			c.c.Close()
		}
	}()
	// Timelines' runners go first, before the lab's lock: a runner waiting
	// for the lock to carry out a step would otherwise keep its supervisor,
	// and this down, waiting for the grace time. Each finishes the step it
	// is carrying out; the plan stops any started meanwhile.
	timelines, timelinesErr := supervise.New(e.store, lab, e.log).StopTimelines()
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()

	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}

	// The lab's host links (the veths' host ends, their peers with them,
	// Linux bridges) are most of a down's time, the kernel's. They go at
	// once, while down reads the rest, when nothing must go before them:
	// no port of the lab on a bridge that is not the lab's (a port whose
	// device vanishes first makes ovs-vswitchd complain; the lab's own
	// Open vSwitch bridges go first, in one transaction, as the plan's
	// del-br would), no interface of the user's to give back from a
	// bridge, no process netlab started (a service stops while its network
	// is still there). What it deleted is left out of what the observation
	// saw (which may be some of it, read meanwhile) and said here. If it
	// fails, the links are still there for the observation, and the plan
	// deletes them and says what failed.
	type earlyDown struct {
		bridges    []string     // the lab's OVS bridges, deleted from the database
		bridgeWait func() error // until ovs-vswitchd has removed them
		links      []string     // the lab's host links, deleted
	}
	var early chan earlyDown // nil: nothing deleted early
	deleteEarly := len(j.External) == 0 && supervise.New(e.store, lab, e.log).Idle()
	linksEarly := func(r earlyDown) {
		early = make(chan earlyDown, 1)
		go func() {
			r.links, _ = kernel.DeleteLabGroup(lab)
			early <- r
		}()
	}
	earlyDone := sync.OnceValue(func() earlyDown {
		if early == nil {
			return earlyDown{}
		}
		return <-early
	})
	// Nothing of this down outlives it, whichever way it returns.
	defer earlyDone()
	if deleteEarly && len(j.Bridges) == 0 {
		// A lab with no Open vSwitch bridge needs nothing more to know:
		// its links go now, before the journal's note, the connection to
		// Open vSwitch and the looks for what an interrupted run left,
		// which go on beside the kernel's deletion (none of them reads or
		// needs the host links).
		linksEarly(earlyDown{})
	}
	if e.store.Exists(lab) {
		// Say so before anything stops: an up after a down killed midway
		// must not take a process told to stop for one that runs. When it
		// cannot be recorded (a full /run), down goes on all the same: the
		// lab's objects carry its markers, and removing them matters more
		// than the note; a later down still finds what this one leaves.
		j.DownAt = time.Now().UTC()
		if err := e.store.Save(j); err != nil {
			e.logf("warning: could not record the down in the journal (%v): going on; if this down is cut short, run it again\n", err)
		}
	}
	conn := connected()
	oc, err := conn.c, conn.err
	if err != nil {
		return nil, err
	}
	if oc == nil && (len(j.Bridges) > 0 || e.privateDBExists()) {
		// The lab's bridges may sit in the database of a private OVS whose
		// daemons died: start it to remove them (and stop it again below).
		release, rerr := e.store.OVSUser()
		if rerr != nil {
			return nil, rerr
		}
		oc, err = e.connectOVS(true)
		release()
		if err != nil {
			return nil, err
		}
		for _, w := range oc.Warnings() {
			e.logf("warning: %s\n", w)
		}
	}
	privateBusy := false
	if deleteEarly && len(j.Bridges) > 0 && oc != nil {
		// With the lab's Open vSwitch bridges deleted first, as soon as
		// Open vSwitch is reached and before the observation starts:
		// ovsdb-server answers one request at a time, and this one is on
		// the way to the kernel's deletion, the observation only on the
		// way to the plan. Not done (a port of the lab on another bridge,
		// or an error): the links wait for the plan too.
		d, ok, _ := oc.StartDeleteLabBridges(lab)
		if ok {
			linksEarly(earlyDown{bridges: d.Names, bridgeWait: d.Wait})
		}
		// Bridges of others left in netlab's private Open vSwitch, as the
		// deletion's own transaction read them: it is not idle, and stays
		// without another look at the end. Transactions go one at a time,
		// so of labs going down together the last to delete its bridges
		// sees none left, and looks.
		privateBusy = d.OthersLeft && oc.Info().Private
	}
	owned = true // by the session from here, or closed below
	s, err := e.newSession(lab, oc)
	if err != nil {
		if oc != nil {
			oc.Close()
		}
		return nil, err
	}
	defer s.close()
	ap := s.applier(j)
	ap.Removing()

	res := &DownResult{}
	var errs []error
	var rmu sync.Mutex // actions of one step finish concurrently
	removed := func(msg string) {
		rmu.Lock()
		defer rmu.Unlock()
		res.Removed = append(res.Removed, msg)
		e.logf("removed %s\n", msg)
		e.emit(Event{Kind: "removed", Lab: lab, Done: len(res.Removed), Action: msg})
	}
	for _, name := range timelines {
		removed("timeline " + name + " (its runner stopped)")
	}
	errs = append(errs, timelinesErr)
	// What an interrupted run left that no observation shows as the lab's:
	// a namespace file never mounted, a reflector never given its pidfile.
	if err := apply.RemoveHalfCreated(j); err != nil {
		errs = append(errs, err)
	}
	strays, err := s.procs.StopStrays()
	errs = append(errs, err)
	for _, p := range strays {
		removed(p + " (no pidfile: left by an interrupted run)")
	}

	snap, err := s.reader().Down(lab, j)
	ed := earlyDone()
	if err != nil {
		if ed.bridgeWait != nil {
			err = errors.Join(err, ed.bridgeWait())
		}
		return nil, err
	}
	if host := snap.Namespaces[topology.Host]; host != nil && len(ed.links) > 0 {
		for _, name := range ed.links {
			delete(host.Links, name)
		}
		// A route through one of them went with it.
		host.Routes = slices.DeleteFunc(host.Routes, func(r state.Route) bool { return slices.Contains(ed.links, r.Dev) })
	}
	// A bridge deleted early stays in the snapshot, read before or not:
	// the plan's del-br finds it gone and forgets it in the journal, says
	// it removed it, and keeps its device, which ovs-vswitchd removes, from
	// being taken for one a dead ovs-vswitchd left.
	for _, name := range ed.bridges {
		if snap.Bridges[name] == nil {
			snap.Bridges[name] = &state.Bridge{Name: name, Type: topology.BridgeOVS, Owner: lab, Ports: map[string]*state.Port{}}
		}
	}
	if len(ed.links) > 0 {
		removed(plan.Action{Lab: lab, Step: plan.DelLinks{NS: topology.Host, Links: ed.links}}.RemovedText())
	}
	p, left := plan.Down(plan.DownInput{Lab: lab, Journal: j, Snapshot: snap})
	res.LeftAlone = left
	_, err = ap.Run(p, apply.Options{KeepGoing: true, Quiet: true, Done: func(a plan.Action) {
		if msg := a.RemovedText(); msg != "" {
			removed(msg)
		}
	}})
	errs = append(errs, err)
	if ed.bridgeWait != nil {
		// After the plan, which went on meanwhile, as after its own
		// bridge deletions (apply.Session.Run).
		errs = append(errs, ed.bridgeWait())
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if err := e.store.Remove(lab); err != nil {
		return res, err
	}
	e.store.RemoveLock(lab)
	if !privateBusy {
		if err := e.stopIdleOVS(ap, removed); err != nil {
			return res, err
		}
	}
	res.NotRunning = len(res.Removed) == 0 && j.Empty()
	return res, nil
}

// stopIdleOVS stops netlab's private OVS when no lab has a bridge in it and
// no other netlab process is using it, and says so through removed.
func (e *Engine) stopIdleOVS(ap *apply.Session, removed func(string)) error {
	release, idle, err := e.store.OVSIdle()
	if err != nil || !idle {
		return err
	}
	stopped, err := ovs.StopPrivateIfIdle(e.ovsOpts...)
	release()
	if err != nil || !stopped {
		return err
	}
	removed("private Open vSwitch (no lab uses it)")
	// A daemon that died without cleaning up left its datapath's device;
	// once it is stopped for good, nothing uses it.
	if gone, err := ap.RemoveNetdevLeftover(); err != nil {
		return err
	} else if gone {
		removed("interface ovs-netdev (left by netlab's private Open vSwitch)")
	}
	return nil
}

// DownPlan is what Down would do, changing nothing: the plan, what it
// leaves alone, and notes on what it would do besides (start netlab's
// private OVS to reach bridges in its database, stop it when it is idle).
func (e *Engine) DownPlan(lab string) (plan.Plan, []string, []string, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, nil, nil, err
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, nil, nil, err
	}
	var notes []string
	if oc == nil && (len(j.Bridges) > 0 || e.privateDBExists()) {
		notes = append(notes, "Open vSwitch is not running: down starts netlab's private one to remove the lab's bridges from its database ("+strings.Join(j.Bridges, ", ")+")")
	}
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, nil, nil, err
	}
	defer s.close()
	snap, err := s.reader().Down(lab, j)
	if err != nil {
		return nil, nil, nil, err
	}
	p, left := plan.Down(plan.DownInput{Lab: lab, Journal: j, Snapshot: snap})
	if n := s.procs.Strays(); n > 0 {
		notes = append(notes, fmt.Sprintf("%d netlab processes of the lab without a pidfile (left by an interrupted run) are stopped first", n))
	}
	if oc != nil && oc.Info().Private {
		notes = append(notes, "then netlab's private Open vSwitch stops if no other lab uses it")
	}
	return p, left, notes, nil
}

// privateDBExists says whether netlab's private OVS has a database, which
// may hold bridges even while its daemons are not running.
func (e *Engine) privateDBExists() bool {
	dir := filepath.Join(e.store.Root, "ovs")
	_, err := os.Stat(filepath.Join(dir, "conf.db"))
	return err == nil
}

// Labs lists the labs that have anything on the machine: a journal, a marked
// namespace, a marked host link or a marked OVS bridge.
func (e *Engine) Labs() ([]string, error) {
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	s, err := e.newSession("", oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.reader().Labs()
}
