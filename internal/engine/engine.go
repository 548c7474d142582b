// Package engine runs netlab's verbs: Up, Down, Plan and Status. It is the only
// package that sees both the plan and the drivers: it locks the lab, observes
// the machine through the drivers, asks the plan for actions, applies them one
// by one with the journal written around each, and observes again to prove
// the machine converged.
package engine

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netlab-dev/netlab/internal/apply"
	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/observe"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// Option configures an Engine.
type Option func(*options)

type options struct {
	progress func(Event)
	force    bool
	root     string
	ovsOpts  []ovs.Option
	log      io.Writer
	afterAct func(done int)
	parallel int
}

// WithParallel sets how many actions of one step (and namespaces being
// read) run at once; 0 is apply.Parallelism(). For measuring: the default
// was chosen by measurement.
func WithParallel(n int) Option { return func(o *options) { o.parallel = n } }

// WithRoot keeps journals, locks and the private OVS under dir instead of
// /run/netlab (tests use it to stay apart from the user's labs).
func WithRoot(dir string) Option { return func(o *options) { o.root = dir } }

// WithOVS passes options to the Open vSwitch driver.
func WithOVS(opts ...ovs.Option) Option {
	return func(o *options) { o.ovsOpts = append(o.ovsOpts, opts...) }
}

// WithForce lets up attach an external interface that carries the host's
// default route.
func WithForce(force bool) Option { return func(o *options) { o.force = force } }

// WithLog makes the engine print each action as it applies it.
func WithLog(w io.Writer) Option { return func(o *options) { o.log = w } }

// WithAfterAction calls fn after each action up has applied, with how many
// it has applied so far (concurrently, as actions of one step finish
// together). It is a test's seam: the crash suites give netlab
// NETLAB_CRASH_AFTER=K, and the command ends the process there like kill -9
// would (cmd/netlab); engine tests count and stop.
func WithAfterAction(fn func(done int)) Option { return func(o *options) { o.afterAct = fn } }

// Engine runs the verbs. It holds no state between calls except its options.
type Engine struct {
	progress func(Event)
	logMu    sync.Mutex
	force    bool
	store    *store.Store
	ovsOpts  []ovs.Option
	log      io.Writer
	afterAct func(done int)
	parallel int
	// probe finds what impairments the kernel supports, once per engine:
	// it makes a scratch namespace, and up observes two or three times.
	probe func() (*state.ImpairSupport, error)
	// probeVLAN finds what the kernel offers VLANs, once per engine.
	probeVLAN func() (*state.VLANSupport, error)
}

// New returns an engine.
func New(opts ...Option) *Engine {
	o := options{log: io.Discard}
	for _, fn := range opts {
		fn(&o)
	}
	ovsOpts := append([]ovs.Option{}, o.ovsOpts...)
	if o.root != "" {
		ovsOpts = append([]ovs.Option{ovs.WithRunDir(filepath.Join(o.root, "ovs"))}, ovsOpts...)
	}
	return &Engine{store: store.New(o.root), ovsOpts: ovsOpts, log: o.log, force: o.force, progress: o.progress, afterAct: o.afterAct,
		parallel: o.parallel, probe: sync.OnceValues(observe.ProbeImpair), probeVLAN: sync.OnceValues(observe.ProbeVLAN)}
}

// Store exposes the journal store (status and the CLI list labs from it).
func (e *Engine) Store() *store.Store { return e.store }

// ViewDir is where the lab namespace's view of files lives.
func (e *Engine) ViewDir(lab, ns string) string { return e.store.ViewDir(lab, ns) }

// HostsFile is the lab's hosts file.
func (e *Engine) HostsFile(lab string) string { return e.store.HostsFile(lab) }

func (e *Engine) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.log, format, args...)
}

// planInput is what plan.Make is given, the one way the engine builds it:
// the file, what was observed, the journal, whether up may take an external
// interface that carries the host's default route, the machine's own
// facts (the default OVS datapath, the CPUs for reflector queues), and the
// traces `netlab impair` set (the lab's copies).
func (e *Engine) planInput(lab *topology.Lab, snap *state.Snapshot, j *state.Journal, force bool) (plan.Input, error) {
	in := plan.Input{Lab: lab, Snapshot: snap, Journal: j, Force: force, Datapath: ovs.DefaultDatapath(), CPUs: runtime.NumCPU()}
	for _, k := range state.SortedNames(j.Impair) {
		ref := j.Impair[k].Trace
		if ref.IsZero() || lab.Traces[ref.Sum] != nil || in.Traces[ref.Sum] != nil {
			continue
		}
		t, err := e.store.LoadTrace(j.Lab, ref)
		if err != nil {
			return in, fmt.Errorf("lab %s: %s: %w", j.Lab, k, err)
		}
		if t == nil {
			continue // the plan says it is missing
		}
		if in.Traces == nil {
			in.Traces = map[string]*topology.Trace{}
		}
		in.Traces[ref.Sum] = t
	}
	return in, nil
}

// makePlan plans the lab (see planInput).
func (e *Engine) makePlan(lab *topology.Lab, snap *state.Snapshot, j *state.Journal, force bool) (plan.Plan, error) {
	in, err := e.planInput(lab, snap, j, force)
	if err != nil {
		return nil, err
	}
	return plan.Make(in)
}

// hasOVS says whether the lab has Open vSwitch bridges.
func hasOVS(lab *topology.Lab) bool {
	for _, b := range lab.Bridges {
		if b.Type == topology.BridgeOVS {
			return true
		}
	}
	return false
}

// connectOVS returns a client for the running OVS, or nil when none runs.
// With start, it starts netlab's private OVS when none runs.
func (e *Engine) connectOVS(start bool) (*ovs.Client, error) {
	if start {
		c, err := ovs.EnsureRunning(e.ovsOpts...)
		if err != nil {
			return nil, fmt.Errorf("open vswitch: %w", err)
		}
		return c, nil
	}
	c, err := ovs.Connect(e.ovsOpts...)
	if errors.Is(err, ovs.ErrNotRunning) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open vswitch: %w", err)
	}
	return c, nil
}

// Result is what Up did.
type Result struct {
	Plan plan.Plan // the actions applied; empty when the lab was up to date
	// Warnings are what up worked around while applying, e.g. ports that
	// Open vSwitch could not open as AF_XDP and got as system ports.
	Warnings []string
}

// CheckFlows has Open vSwitch check the file's raw flows before anything
// changes, and reports bad ones at their place in the file.
func CheckFlows(lab *topology.Lab) error {
	var errs topology.ErrorList
	for _, b := range lab.Bridges {
		if len(b.Flows) == 0 {
			continue
		}
		var texts []string
		for _, f := range b.Flows {
			texts = append(texts, f.Text)
		}
		for _, err := range ovs.CheckFlows(texts) {
			var fe *ovs.FlowError
			if errors.As(err, &fe) && fe.Index >= 0 && fe.Index < len(b.Flows) {
				f := b.Flows[fe.Index]
				errs = append(errs, &topology.Error{File: lab.File, Pos: f.Pos, Path: f.Path, Msg: "Open vSwitch rejects this flow: " + fe.Msg})
				continue
			}
			errs = append(errs, &topology.Error{File: lab.File, Pos: b.Pos, Path: "bridges." + b.Name + ".flows", Msg: err.Error()})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Plan computes what Up would do, changing nothing.
func (e *Engine) Plan(lab *topology.Lab) (plan.Plan, error) {
	if err := CheckFlows(lab); err != nil {
		return nil, err
	}
	j, err := e.store.Load(lab.Name)
	if err != nil {
		return nil, err
	}
	if err := e.sameLab(lab, j); err != nil {
		return nil, err
	}
	// Connected last: the session closes the connection.
	oc, err := e.connectOVS(false)
	if err != nil && hasOVS(lab) {
		return nil, err
	}
	s, err := e.newSession(lab.Name, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	snap, err := s.reader().Lab(lab, j)
	if err != nil {
		return nil, err
	}
	return e.makePlan(lab, snap, j, e.force)
}

// ErrNotConverged is returned by Up when the machine still differs from the
// file after applying the plan.
var ErrNotConverged = errors.New("not converged")

// Up makes the machine match the lab: lock, observe, plan, apply with the
// journal, observe again and check that nothing is left to do. The lab's is recorded in the journal so status can load the file the same way.
func (e *Engine) Up(lab *topology.Lab, prefix string) (*Result, error) {
	if err := kernel.CheckPrivileges(); err != nil {
		return nil, err
	}
	if err := CheckFlows(lab); err != nil {
		return nil, err
	}
	unlock, err := e.store.Lock(lab.Name)
	if err != nil {
		return nil, err
	}
	defer func() {
		// An up that changed nothing and left no journal (a clash, a bad
		// flow) leaves no lock file either.
		if !e.store.Exists(lab.Name) {
			e.store.RemoveLock(lab.Name)
		}
		unlock()
	}()

	j, err := e.store.Load(lab.Name)
	if err != nil {
		return nil, err
	}
	if e.store.Exists(lab.Name) && j.Machine != lab.Machine {
		return nil, fmt.Errorf("lab %s here is %s: take it down first (netlab down %s)", lab.Name, PartText(j.Machine), lab.Name)
	}
	if err := e.sameLab(lab, j); err != nil {
		return nil, err
	}
	release, err := e.store.OVSUser()
	if err != nil {
		return nil, err
	}
	defer release()
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	s, err := e.newSession(lab.Name, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()

	if err := apply.RemoveHalfCreated(j); err != nil {
		return nil, err
	}
	if _, err := s.procs.StopStrays(); err != nil {
		return nil, err
	}
	if !j.DownAt.IsZero() {
		// A down was interrupted: its processes were perhaps told to stop
		// and are still exiting. Stop them for good; the plan starts them
		// again.
		if _, err := s.procs.StopAll(); err != nil {
			return nil, err
		}
		j.DownAt = time.Time{}
	}
	snap, err := s.reader().Lab(lab, j)
	if err != nil {
		return nil, err
	}
	ap := s.applier(j)
	if err := ap.RepairCrashLeftovers(j, snap); err != nil {
		return nil, err
	}
	p, err := e.makePlan(lab, snap, j, e.force)
	if err != nil {
		return nil, err
	}
	if oc == nil && hasOVS(lab) {
		// The plan found no clash without OVS; only now start the private
		// one, and observe again with it.
		if oc, err = e.connectOVS(true); err != nil {
			return nil, err
		}
		s.ovs = oc
		ap.SetOVS(oc)
		s.warnings = append(s.warnings, oc.Warnings()...)
		if snap, err = s.reader().Lab(lab, j); err != nil {
			return nil, err
		}
		if err := ap.RemoveDeadBridgeDevices(j, snap); err != nil {
			return nil, err
		}
		if p, err = e.makePlan(lab, snap, j, e.force); err != nil {
			return nil, err
		}
	}
	if abs, err := filepath.Abs(lab.File); err == nil {
		j.File = abs
	}
	j.Prefix = prefix
	j.Machine = lab.Machine
	j.Force = e.force
	apply.RecordIntents(p, j)
	if err := e.store.Save(j); err != nil {
		return nil, err
	}
	var step atomic.Int64
	emitAction := func(a plan.Action) {
		s.e.emit(Event{Kind: "action", Lab: s.lab, Done: int(step.Add(1)), Total: len(p), Action: a.String()})
	}
	opts := s.options(emitAction)
	opts.Unsettled = true
	done, err := ap.Run(p, opts)
	if err != nil {
		err = errors.Join(err, ap.Settle())
		return &Result{Plan: p[:done], Warnings: append(s.warnings, ap.Warnings()...)}, err
	}
	if len(p) == 0 {
		return &Result{}, nil
	}
	// Observe again: the plan must now be empty. The namespaces are read
	// again through their sockets (no thread enters them: the sysctls this
	// run wrote were read back as it wrote them, the others it read
	// before), while ovs-vswitchd opens the last ports; the host and Open
	// vSwitch once it has (Settle). Flows only of the bridges the plan did
	// something to.
	r := s.reader()
	r.Flows = observe.KnownFlows(p, snap)
	r.Settle = ap.SettleObserving
	snap, err = r.Lab(lab, j)
	err = errors.Join(err, ap.Settle())
	res := &Result{Plan: p, Warnings: append(s.warnings, ap.Warnings()...)}
	if err != nil {
		return res, err
	}
	again, err := e.makePlan(lab, snap, j, e.force)
	if err != nil {
		return res, err
	}
	if len(again) > 0 {
		return res, fmt.Errorf("%w: still to do:\n%s", ErrNotConverged, again)
	}
	return res, nil
}

// sameLab refuses a lab whose name, prefix included, is that of another
// lab that is up: --prefix adva of lab bc and --prefix adv of lab abc both
// make advabc, and the second would take the first's objects for its own
// and remove them. The journal says which prefix made the lab up.
func (e *Engine) sameLab(lab *topology.Lab, j *state.Journal) error {
	if !e.store.Exists(lab.Name) || j.Prefix == lab.Prefix {
		return nil
	}
	return topology.ErrorList{&topology.Error{File: lab.File, Pos: lab.Pos, Path: "name", Msg: fmt.Sprintf(
		"lab %s is up already as lab %s with %s; this is lab %s with %s, which makes the same name: choose another prefix",
		lab.Name, strings.TrimPrefix(j.Lab, j.Prefix), prefixText(j.Prefix), strings.TrimPrefix(lab.Name, lab.Prefix), prefixText(lab.Prefix))}}
}

func prefixText(p string) string {
	if p == "" {
		return "no prefix"
	}
	return "--prefix " + p
}

// PartText names what of a lab a machine has.
func PartText(machine string) string {
	if machine == "" {
		return "a lab of one machine"
	}
	return "machine " + machine + "'s part"
}

// session is one verb's work on one lab: the kernel handles of the
// namespaces it reads and changes, its Open vSwitch connection, the lab's
// supervised processes, and what to carry out plans with.
type session struct {
	e       *Engine
	lab     string
	ovs     *ovs.Client
	handles *kernel.Handles
	procs   *supervise.Supervisor
	// warnings are what starting Open vSwitch said (Result.Warnings).
	warnings []string
}

func (e *Engine) newSession(lab string, oc *ovs.Client) (*session, error) {
	return &session{e: e, lab: lab, ovs: oc, handles: kernel.NewHandles(), procs: supervise.New(e.store, lab, e.log)}, nil
}

func (s *session) close() {
	if s.ovs != nil {
		s.ovs.Close()
	}
	s.handles.Close()
}

// reader returns what reads the machine for the session's lab.
func (s *session) reader() *observe.Reader {
	return &observe.Reader{Handles: s.handles, OVS: s.ovs, Store: s.e.store, Procs: s.procs, Probe: s.e.probe, ProbeVLAN: s.e.probeVLAN, Parallel: s.e.parallel}
}

// applier returns what carries out the session's plans, journaling into j.
func (s *session) applier(j *state.Journal) *apply.Session {
	return apply.New(apply.Config{Lab: s.lab, Handles: s.handles, OVS: s.ovs, Store: s.e.store, Procs: s.procs, Log: s.e.log, Parallel: s.e.parallel}, j)
}

// options are apply's options for an up-like verb: each action logged as
// it starts, the test hook after each.
func (s *session) options(done func(a plan.Action)) apply.Options {
	return apply.Options{After: s.e.afterAct, Done: done, Log: s.e.log}
}
