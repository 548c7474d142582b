package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/state"
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

// graceTime is how long processes in a namespace get between SIGTERM and SIGKILL.
const graceTime = 2 * time.Second

// stopProcesses ends every process inside the namespace: a process keeps a
// namespace and its links alive after the namespace's name is deleted. It
// signals by PID only, and never itself.
func stopProcesses(ns string, log io.Writer) ([]int, error) {
	pids, err := namespace.Pids(ns)
	if err != nil {
		return nil, fmt.Errorf("find processes in namespace %s: %w", ns, err)
	}
	return stopPids(ns, pids, log)
}

// stopPids ends the given processes of a namespace: SIGTERM, SIGKILL after
// the grace period. Never this process.
func stopPids(ns string, pids []int, log io.Writer) ([]int, error) {
	var targets []int
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		targets = append(targets, pid)
		fmt.Fprintf(log, "stopping process %d (%s) in namespace %s\n", pid, proc.Name(pid), ns)
	}
	if left := proc.Stop(targets, graceTime); len(left) > 0 {
		return targets, fmt.Errorf("namespace %s: processes %v did not stop", ns, left)
	}
	return targets, nil
}

// alive is proc.Alive: the pids that still run.
func alive(pids []int) []int { return proc.Alive(pids) }

// Down removes everything of the lab, from the journal and the markers alone:
// no topology file is needed. Like up it observes, plans (plan.Down: what
// to remove, in what order, and what to leave alone) and applies with the
// same loop; unlike up it goes on past a failed action, removing as much as
// it can, and reports every error. It never removes an object that does not
// carry the lab's marker (or that the journal names and an interrupted run
// left unmarked).
func (e *Engine) Down(lab string) (*DownResult, error) {
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()

	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
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
	oc, err := e.connectOVS(false)
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
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	s.downing = true
	s.j = j

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
	// What an interrupted run left that no observation shows as the lab's:
	// a namespace file never mounted, a reflector never given its pidfile.
	if err := removeHalfCreated(j); err != nil {
		errs = append(errs, err)
	}
	strays, err := e.stopStrayProcesses(lab, e.log)
	errs = append(errs, err)
	for _, p := range strays {
		removed("netlab reflect on " + p + " (no pidfile: left by an interrupted run)")
	}

	snap, err := s.observeDown(lab, j)
	if err != nil {
		return nil, err
	}
	p, left := plan.Down(plan.DownInput{Lab: lab, Journal: j, Snapshot: snap})
	res.LeftAlone = left
	_, err = s.applyPlan(p, applyOptions{keepGoing: true, quiet: true, done: func(a plan.Action) {
		if msg := a.RemovedText(); msg != "" {
			removed(msg)
		}
	}})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if err := e.store.Remove(lab); err != nil {
		return res, err
	}
	e.store.RemoveLock(lab)
	// netlab's private OVS goes when no lab has a bridge in it and no other
	// netlab process is using it.
	if release, idle, err := e.store.OVSIdle(); err != nil {
		return res, err
	} else if idle {
		stopped, err := ovs.StopPrivateIfIdle(e.ovsOpts...)
		release()
		if err != nil {
			return res, err
		}
		if stopped {
			removed("private Open vSwitch (no lab uses it)")
			// A daemon that died without cleaning up left its datapath's
			// device; once it is stopped for good, nothing uses it.
			if gone, err := s.removeNetdevLeftover(); err != nil {
				return res, err
			} else if gone {
				removed("interface ovs-netdev (left by netlab's private Open vSwitch)")
			}
		}
	}
	res.NotRunning = len(res.Removed) == 0 && j.Empty()
	return res, nil
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
	snap, err := s.observeDown(lab, j)
	if err != nil {
		return nil, nil, nil, err
	}
	p, left := plan.Down(plan.DownInput{Lab: lab, Journal: j, Snapshot: snap})
	if strays := e.strayProcesses(lab); len(strays) > 0 {
		notes = append(notes, fmt.Sprintf("%d netlab reflect processes without a pidfile (left by an interrupted run) are stopped first", len(strays)))
	}
	if oc != nil && oc.Info().Private {
		notes = append(notes, "then netlab's private Open vSwitch stops if no other lab uses it")
	}
	return p, left, notes, nil
}

// observeDown observes what down needs, and no more: whose each namespace
// is (its marker) and its links' names, the host's links with their
// markers and the host sysctls the journal saved, the lab's NAT table in
// the host, the OVS bridges of the lab or with its ports, and its
// supervised processes.
func (s *session) observeDown(lab string, j *state.Journal) (*state.Snapshot, error) {
	snap := &state.Snapshot{Lab: lab, Namespaces: map[string]*state.Namespace{}, Bridges: map[string]*state.Bridge{}}
	// Open vSwitch answers while the kernel is read: two waits become one.
	// (The channel has room for the answer, so on an error return below
	// the goroutine still ends.)
	type ovsObserved struct {
		bridges map[string]*state.Bridge
		err     error
	}
	ovsc := make(chan ovsObserved, 1)
	if s.ovs != nil {
		go func() {
			b, err := s.ovs.Observe()
			ovsc <- ovsObserved{b, err}
		}()
	} else {
		ovsc <- ovsObserved{}
	}
	names, err := namespace.List()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		owner, links, err := s.marker(name)
		switch {
		case err != nil && contains(j.Namespaces, name):
			return nil, err
		case err != nil || links == nil:
			// Another lab's namespace may be half made while we look; only
			// one the journal names must be readable. Or it vanished.
			s.forget(name)
			continue
		}
		s.forget(name)
		if owner != lab && !contains(j.Namespaces, name) {
			continue
		}
		o := &state.Namespace{Name: name, Owner: owner, Links: map[string]*state.Link{}}
		for _, l := range links {
			o.Links[l] = &state.Link{Name: l}
		}
		snap.Namespaces[name] = o
	}
	host, err := s.observeNS(topology.Host, state.SortedNames(j.HostSysctls))
	if err != nil {
		return nil, err
	}
	if err := s.observeHostShares(lab, nil, host, snap); err != nil {
		return nil, err
	}
	for name, l := range host.Links {
		if l.Owner() != lab && !contains(j.HostLinks, name) && !contains(j.Bridges, name) && j.External[name].Bridge == "" {
			delete(host.Links, name)
		}
	}
	if t, err := nft.ObserveNAT(topology.Host, lab); err != nil {
		return nil, err
	} else if t != nil {
		host.NAT = &state.NATTable{}
	}
	if err := observeDownLoss(lab, j, host); err != nil {
		return nil, err
	}
	snap.Namespaces[topology.Host] = host
	o := <-ovsc
	if o.err != nil {
		return nil, o.err
	}
	for name, b := range o.bridges {
		if b.Owner == lab || contains(j.Bridges, name) || hasOwnedPort(b, lab) {
			snap.Bridges[name] = b
		}
	}
	for name, l := range host.Links {
		if l.Kind == state.KindBridge && snap.Bridges[name] == nil {
			snap.Bridges[name] = &state.Bridge{Name: name, Type: topology.BridgeLinux, Owner: l.Owner()}
		}
	}
	s.e.observeProcesses(lab, snap)
	return snap, nil
}

// removeNetdevLeftover deletes the ovs-netdev device an ovs-vswitchd that
// died without cleaning up leaves in the host namespace: only once netlab
// has stopped its private instance and no ovs-vswitchd runs here.
func (s *session) removeNetdevLeftover() (bool, error) {
	if ovs.VSwitchdRunning() {
		return false, nil
	}
	h, err := s.ns(topology.Host)
	if err != nil {
		return false, err
	}
	o, err := h.Observe(nil)
	if err != nil {
		return false, err
	}
	if l := o.Links["ovs-netdev"]; l == nil || l.Kind != state.KindTuntap || l.Alias != "" {
		return false, nil
	}
	return true, h.DeleteLink("ovs-netdev")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func onlyLoopback(o *state.Namespace) bool {
	for name := range o.Links {
		if name != "lo" {
			return false
		}
	}
	return true
}

func ownerText(owner string) string {
	if owner == "" {
		return "no netlab marker"
	}
	return "belongs to lab " + owner
}

// Labs lists the labs that have anything on the machine: a journal, a marked
// namespace, a marked host link or a marked OVS bridge.
func (e *Engine) Labs() ([]string, error) {
	labs := map[string]bool{}
	journaled, err := e.store.Labs()
	if err != nil {
		return nil, err
	}
	for _, l := range journaled {
		labs[l] = true
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	s, err := e.newSession("", oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	names, err := namespace.List()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if owner, _, err := s.marker(name); err == nil && owner != "" {
			labs[owner] = true
		}
		s.forget(name)
	}
	if host, err := s.observeNS(topology.Host, nil); err == nil && host != nil {
		for _, l := range host.Links {
			if owner := l.Owner(); owner != "" {
				labs[owner] = true
			}
		}
	}
	if oc != nil {
		bridges, err := oc.Observe()
		if err != nil {
			return nil, err
		}
		for _, b := range bridges {
			if b.Owner != "" {
				labs[b.Owner] = true
			}
		}
	}
	return state.SortedNames(labs), nil
}

// marker reads whose a namespace is; links is nil when it vanished.
func (s *session) marker(name string) (owner string, links []string, err error) {
	h, err := s.ns(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return h.Marker()
}

// privateDBExists says whether netlab's private OVS has a database, which
// may hold bridges even while its daemons are not running.
func (e *Engine) privateDBExists() bool {
	dir := filepath.Join(e.store.Root, "ovs")
	_, err := os.Stat(filepath.Join(dir, "conf.db"))
	return err == nil
}
