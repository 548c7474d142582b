// Package apply carries out a plan's actions: the one place that maps each
// kind of action to the driver call that does it. It dispatches through a
// table (handlers), one file per driver: kernel.go (namespaces, links,
// addresses, routes, sysctls), ovs.go (bridges, ports, flows, external
// interfaces), nft.go (NAT and loss tables), impair.go (qdiscs),
// process.go (supervised processes and those in namespaces), emulator.go
// (the userspace link emulator), events.go (pulled cables, partitions) and
// timeline.go (timelines' runners). A test fails when a kind of plan has no
// handler.
//
// Creations are journaled before they happen (RecordIntents, in one save
// for the whole plan), removals after: a crash at any point leaves a
// journal naming everything that may exist.
package apply

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/ovs"
)

// Session carries out plans of one lab.
type Session struct {
	lab     string
	handles *kernel.Handles
	ovs     *ovs.Client
	store   *store.Store
	procs   *supervise.Supervisor
	log     io.Writer
	// parallel is how many actions of a step run at once.
	parallel int

	// mu guards what actions running at once share: the journal, the
	// warnings, the namespaces whose processes are stopped and the waits
	// still pending.
	mu sync.Mutex
	j  *state.Journal
	// removing is set for down: the journal is not saved after each
	// removal (down deletes it at the end, and a down cut short observes
	// again).
	removing bool
	warnings []string
	// nsStopped are the namespaces whose processes an earlier action
	// stopped, so deleting them does not walk /proc again.
	nsStopped map[string]bool
	// pending are the waits of bridge deletions ovs-vswitchd is still
	// applying: Run goes on with the next actions and waits for them at its
	// end, so namespaces and links go while ovs-vswitchd closes the ports.
	pending []func() error
	// settling are the waits of ports ovs-vswitchd is still opening
	// (startPorts): the actions that do not need them go on meanwhile.
	// settleMu serialises Settle.
	settling []func(observe bool) error
	settleMu sync.Mutex
	// dirty says the journal changed since it was last saved (removals:
	// saved once at the end of a step, see forget); goneNS and goneLinks
	// are the namespaces and host links removed meanwhile, taken out of
	// the journal's lists in one pass.
	dirty             bool
	goneNS, goneLinks []string

	// run carries out one action: the table's handler, or a test's fake.
	run func(a plan.Action) error
	// fuse lets one driver call carry out several actions (handler.fuse);
	// off for a test's fake driver.
	fuse bool
}

// Config is what a session works with.
type Config struct {
	Lab     string
	Handles *kernel.Handles
	OVS     *ovs.Client // nil when the lab needs none and none runs
	Store   *store.Store
	Procs   *supervise.Supervisor
	Log     io.Writer // where processes that are stopped are named
	// Parallel is how many actions of a step run at once (0: Parallelism).
	Parallel int
}

// New returns a session of the lab that journals into j.
func New(c Config, j *state.Journal) *Session {
	s := &Session{lab: c.Lab, handles: c.Handles, ovs: c.OVS, store: c.Store, procs: c.Procs, log: c.Log, j: j, nsStopped: map[string]bool{}, parallel: c.Parallel}
	if s.parallel <= 0 {
		s.parallel = Parallelism()
	}
	if s.log == nil {
		s.log = io.Discard
	}
	s.run = s.dispatch
	s.fuse = true
	return s
}

// beforePorts are the kinds of action that may run while ovs-vswitchd
// still opens ports an earlier action added: addresses, routes, sysctls
// and the hosts file live in the kernel and the files, and the ports'
// devices (veth ends) are there already. Any other kind (a flow, a service
// that sends at once) waits for the ports first.
var beforePorts = map[plan.Op]bool{
	plan.OpAddAddr: true, plan.OpReplaceRoute: true, plan.OpSetSysctl: true, plan.OpSetHosts: true,
}

// Settle waits until ovs-vswitchd has opened the ports the session added
// without waiting (startPorts), and checks them; safe to call at once from
// several goroutines (each returns once they are settled), and again.
func (s *Session) Settle() error { return s.settle(false) }

// SettleObserving is Settle for a caller that reads the whole of Open
// vSwitch next (up's check that it converged): the last wait's transaction
// reads it too, and the session's client answers that read with it
// (ovs.Client.StartEnsurePorts) instead of asking ovsdb-server again,
// behind ovs-vswitchd's own updates of the rows it has just applied.
func (s *Session) SettleObserving() error { return s.settle(true) }

func (s *Session) settle(observe bool) error {
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	s.mu.Lock()
	waits := s.settling
	s.settling = nil
	s.mu.Unlock()
	var errs []error
	for i, w := range waits {
		errs = append(errs, w(observe && i == len(waits)-1))
	}
	return errors.Join(errs...)
}

// Removing makes the session down's: the journal is not saved after each
// removal.
func (s *Session) Removing() { s.removing = true }

// SetOVS gives the session the Open vSwitch it started meanwhile.
func (s *Session) SetOVS(c *ovs.Client) { s.ovs = c }

// Warnings are what the session worked around (an OVS port that could not
// be opened as AF_XDP).
func (s *Session) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// journal changes the journal and saves it, serialised: actions run
// concurrently.
func (s *Session) journal(change func(j *state.Journal)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(s.j)
	if s.removing {
		return nil
	}
	return s.store.Save(s.j)
}

// forget changes the journal for what is gone, to be saved once at the end
// of the step (Run): a crash before that leaves a journal naming objects
// that no longer exist, which up and down take as they come (nothing of
// that name, or not the lab's). Saving the whole journal after each
// removal made a big lab's down or shrinking up quadratic.
func (s *Session) forget(change func(j *state.Journal)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(s.j)
	s.dirty = true
}

// forgetNamespace and forgetHostLinks are forget for the journal's long
// lists, which are filtered once at the end of the step.
func (s *Session) forgetNamespace(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goneNS = append(s.goneNS, name)
	s.dirty = true
}

func (s *Session) forgetHostLinks(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goneLinks = append(s.goneLinks, names...)
	s.dirty = true
}

// flush saves what forget changed.
func (s *Session) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	s.j.RemoveNamespaces(s.goneNS...)
	s.j.RemoveHostLinks(s.goneLinks...)
	s.goneNS, s.goneLinks, s.dirty = nil, nil, false
	if s.removing {
		return nil
	}
	return s.store.Save(s.j)
}

// handler carries out one kind of action.
type handler struct {
	run func(s *Session, a plan.Action) error
	// intent records in the journal, before the plan runs, what an
	// action of the kind will create; nil for kinds that create nothing.
	intent func(j *state.Journal, a plan.Action)
	// fuse, when set, prepares a fuser for the plan (once per plan, which
	// it reads only): see fuser.
	fuse     func(p plan.Plan) fuser
	runFused func(s *Session, a plan.Action, more []plan.Action) error
	// runStage, when set, carries out a whole stretch of units of the
	// kind at once (a driver call that goes through them without a
	// hand-off per object), calling done for each as it completes.
	runStage func(s *Session, us []unit, done func(u unit, err error))
}

// on makes the handler of a step type from a function of that type.
func on[T plan.Step](run func(s *Session, step T) error) handler {
	return handler{run: func(s *Session, a plan.Action) error { return run(s, a.Step.(T)) }}
}

// journaling adds an intent to a handler.
func (h handler) journaling(intent func(j *state.Journal, a plan.Action)) handler {
	h.intent = intent
	return h
}

// staged lets a handler carry out a stretch of units at once (see
// handler.runStage).
func (h handler) staged(run func(s *Session, us []unit, done func(u unit, err error))) handler {
	h.runStage = run
	return h
}

// fuser names the later actions of its plan (by index, none taken
// already) that runFused carries out together with the one at i: what one
// driver call does with the object as it makes it (a namespace with its
// sysctls; a veth with its ends' final state).
type fuser func(i int, taken []bool) []int

// fusing lets a handler carry out later actions with its own (see
// handler.fuse).
func (h handler) fusing(fuse func(p plan.Plan) fuser, run func(s *Session, a plan.Action, more []plan.Action) error) handler {
	h.fuse, h.runFused = fuse, run
	return h
}

// handlers is the table of action kinds and what carries each out, one
// part per driver's file.
var handlers = merge(kernelHandlers, ovsHandlers, nftHandlers, impairHandlers, processHandlers, serviceHandlers, eventHandlers, vlanHandlers, timelineHandlers, emulatorHandlers)

func merge(parts ...map[plan.Op]handler) map[plan.Op]handler {
	out := map[plan.Op]handler{}
	for _, part := range parts {
		for op, h := range part {
			if _, dup := out[op]; dup {
				panic("apply: two handlers of " + string(op))
			}
			out[op] = h
		}
	}
	return out
}

func (s *Session) dispatch(a plan.Action) error {
	h, ok := handlers[a.Op()]
	if !ok {
		return fmt.Errorf("no handler of action kind %q", a.Op())
	}
	return h.run(s, a)
}

// RecordIntents writes into j every object the plan will create, before
// anything is applied (the caller saves it once): a crash at any later
// point leaves a journal that names all that may exist (down tolerates
// what does not). Saving once instead of before each object keeps up
// linear in the lab's size.
func RecordIntents(p plan.Plan, j *state.Journal) {
	for _, a := range p {
		if h := handlers[a.Op()]; h.intent != nil {
			h.intent(j, a)
		}
	}
}

// Parallelism is how many actions of one step run at once by default (a
// Session's Config.Parallel overrides it): the kernel work of different
// namespaces is independent, but it takes the kernel's RTNL lock, and more
// workers than CPUs only queue there. Measured on 2 CPUs (docs/design.md,
// "Up: where the time goes").
func Parallelism() int { return min(max(2, runtime.NumCPU()), 8) }

// unit is what one worker carries out at once: an action and the later
// ones fused with it (handler.fuse), in plan order.
type unit []plan.Action

// units groups the plan into what runs at once: each action alone, or
// with the later actions its handler carries out together with it.
func (s *Session) units(p plan.Plan) []unit {
	out := make([]unit, 0, len(p))
	taken := make([]bool, len(p))
	fusers := map[plan.Op]fuser{} // prepared on first use
	for i, a := range p {
		if taken[i] {
			continue
		}
		u := unit{a}
		if h := handlers[a.Op()]; s.fuse && h.fuse != nil {
			f := fusers[a.Op()]
			if f == nil {
				f = h.fuse(p)
				fusers[a.Op()] = f
			}
			for _, j := range f(i, taken) {
				taken[j] = true
				u = append(u, p[j])
			}
		}
		out = append(out, u)
	}
	return out
}

// runUnit carries out a unit: its one action, or all of them through the
// fused handler.
func (s *Session) runUnit(u unit) error {
	if len(u) == 1 {
		return s.run(u[0])
	}
	return handlers[u[0].Op()].runFused(s, u[0], u[1:])
}

// Options say how Run goes about a plan.
type Options struct {
	// After, when set, is called after each action that succeeded with how
	// many have.
	After func(done int)
	// KeepGoing goes on past a failed action, with the next one, and
	// returns every error: down removes as much as it can.
	KeepGoing bool
	// Done is called after each action that succeeded (concurrently).
	Done func(a plan.Action)
	// Quiet does not log each action as it starts (Log): down logs what it
	// removed instead.
	Quiet bool
	// Log gets each action as it starts.
	Log io.Writer
	// Unsettled leaves the wait for the last Open vSwitch ports to the
	// caller (Settle): up reads the lab's namespaces again while
	// ovs-vswitchd opens them.
	Unsettled bool
}

// Run applies the plan in order, running a stretch of actions of the same
// kind concurrently when they work on different things (namespaces,
// bridges): the plan's order matters between kinds (namespaces before their
// veths), not between namespaces. Actions a handler fuses with an earlier
// one (a namespace's sysctls with the namespace; a veth end's settings and
// addresses with the veth) run with it, and count as done with it. It
// returns how many actions completed.
func (s *Session) Run(p plan.Plan, o Options) (int, error) {
	var done atomic.Int64
	finished := func(a plan.Action) {
		n := done.Add(1)
		if o.Done != nil {
			o.Done(a)
		}
		if o.After != nil {
			o.After(int(n))
		}
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) > 0 && !o.KeepGoing
	}
	// record keeps an error (actions of a stage finish concurrently).
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	us := s.units(p)
	for start := 0; start < len(us); {
		end := start + 1
		for end < len(us) && us[end][0].Op() == us[start][0].Op() {
			end++
		}
		if !beforePorts[us[start][0].Op()] {
			if err := s.Settle(); err != nil {
				record(err)
				if failed() {
					break
				}
			}
		}
		if h := handlers[us[start][0].Op()]; s.fuse && h.runStage != nil {
			if !o.Quiet && o.Log != nil {
				for _, u := range us[start:end] {
					for _, a := range u {
						fmt.Fprintf(o.Log, "%s\n", a)
					}
				}
			}
			h.runStage(s, us[start:end], func(u unit, err error) {
				if err != nil {
					record(fmt.Errorf("%s: %w", u[0], err))
					return
				}
				for _, a := range u {
					finished(a)
				}
			})
			if err := s.flush(); err != nil {
				record(err)
			}
			if failed() {
				break
			}
			start = end
			continue
		}
		// Buckets by what the action works on; each bucket runs in order.
		var keys []string
		buckets := map[string][]unit{}
		for _, u := range us[start:end] {
			k := u[0].Scope()
			if _, ok := buckets[k]; !ok {
				keys = append(keys, k)
			}
			buckets[k] = append(buckets[k], u)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, s.parallel)
		for _, k := range keys {
			wg.Add(1)
			sem <- struct{}{}
			go func(bucket []unit) {
				defer wg.Done()
				defer func() { <-sem }()
				for _, u := range bucket {
					if failed() {
						return
					}
					if !o.Quiet && o.Log != nil {
						for _, a := range u {
							fmt.Fprintf(o.Log, "%s\n", a)
						}
					}
					if err := s.runUnit(u); err != nil {
						record(fmt.Errorf("%s: %w", u[0], err))
						continue
					}
					for _, a := range u {
						finished(a)
					}
				}
			}(buckets[k])
		}
		wg.Wait()
		if err := s.flush(); err != nil {
			record(err)
		}
		if failed() {
			break
		}
		start = end
	}
	if !o.Unsettled {
		if err := s.Settle(); err != nil {
			errs = append(errs, err)
		}
	}
	// The bridge deletions ovs-vswitchd was applying meanwhile.
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, wait := range pending {
		if err := wait(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.flush(); err != nil {
		errs = append(errs, err)
	}
	if !o.KeepGoing && len(errs) > 0 {
		return int(done.Load()), errs[0]
	}
	return int(done.Load()), errors.Join(errs...)
}

// ns returns the kernel handle of a namespace.
func (s *Session) ns(name string) (*kernel.NS, error) { return s.handles.Get(name) }
