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

	// run carries out one action: the table's handler, or a test's fake.
	run func(a plan.Action) error
}

// Config is what a session works with.
type Config struct {
	Lab     string
	Handles *kernel.Handles
	OVS     *ovs.Client // nil when the lab needs none and none runs
	Store   *store.Store
	Procs   *supervise.Supervisor
	Log     io.Writer // where processes that are stopped are named
}

// New returns a session of the lab that journals into j.
func New(c Config, j *state.Journal) *Session {
	s := &Session{lab: c.Lab, handles: c.Handles, ovs: c.OVS, store: c.Store, procs: c.Procs, log: c.Log, j: j, nsStopped: map[string]bool{}}
	if s.log == nil {
		s.log = io.Discard
	}
	s.run = s.dispatch
	return s
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

// handler carries out one kind of action.
type handler struct {
	run func(s *Session, a plan.Action) error
	// intent records in the journal, before the plan runs, what an
	// action of the kind will create; nil for kinds that create nothing.
	intent func(j *state.Journal, a plan.Action)
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

// Parallelism bounds how many actions of one step run at once: the kernel
// work of different namespaces is independent, and most of an action's time
// is spent waiting for the kernel, not on a CPU.
const Parallelism = 8

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
}

// Run applies the plan in order, running a stretch of actions of the same
// kind concurrently when they work on different things (namespaces,
// bridges): the plan's order matters between kinds (namespaces before their
// veths), not between namespaces. It returns how many actions completed.
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
	for start := 0; start < len(p); {
		end := start + 1
		for end < len(p) && p[end].Op() == p[start].Op() {
			end++
		}
		// Buckets by what the action works on; each bucket runs in order.
		var keys []string
		buckets := map[string][]plan.Action{}
		for _, a := range p[start:end] {
			k := a.Scope()
			if _, ok := buckets[k]; !ok {
				keys = append(keys, k)
			}
			buckets[k] = append(buckets[k], a)
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, Parallelism)
		for _, k := range keys {
			wg.Add(1)
			sem <- struct{}{}
			go func(actions []plan.Action) {
				defer wg.Done()
				defer func() { <-sem }()
				for _, a := range actions {
					if failed() {
						return
					}
					if !o.Quiet && o.Log != nil {
						fmt.Fprintf(o.Log, "%s\n", a)
					}
					if err := s.run(a); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", a, err))
						mu.Unlock()
						continue
					}
					finished(a)
				}
			}(buckets[k])
		}
		wg.Wait()
		if failed() {
			break
		}
		start = end
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
	if !o.KeepGoing && len(errs) > 0 {
		return int(done.Load()), errs[0]
	}
	return int(done.Load()), errors.Join(errs...)
}

// ns returns the kernel handle of a namespace.
func (s *Session) ns(name string) (*kernel.NS, error) { return s.handles.Get(name) }
