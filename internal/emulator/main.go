package emulator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/linkmodel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/reflector"
	"github.com/netlab-dev/netlab/internal/tundev"
	"github.com/netlab-dev/netlab/topology"
)

const usage = `usage: netlab emulate --ns NS --dev TAP --peer-ns NS --peer-dev TAP
                      --model-file PATH --stats-file PATH [--ovs-port a|b] [--cpus LIST]
                      [--priority realtime|high|normal]

Carries a link between two existing TAP devices (end A: --ns/--dev, end B:
--peer-ns/--peer-dev): every frame one sends passes the model of its
direction (the model file's "a" for what A sends, "b" for what B sends) and
is written into the other. The process attaches, drops every capability,
and runs until SIGTERM; SIGHUP reloads the model file without losing what
is queued. --ovs-port names the end that is a port of Open vSwitch's
userspace datapath (it gets whole frames only).
`

// config is Main's parsed command line.
type config struct {
	ns, dev, peerNS, peerDev string
	modelFile, stateFile     string
	ovsPort                  string // "", "a" or "b"
	cpus                     []int
	priority                 Priority
}

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var cpus string
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.ns, "ns", namespace.Host, "namespace of end A's TAP")
	fs.StringVar(&c.dev, "dev", "", "end A's TAP (required)")
	fs.StringVar(&c.peerNS, "peer-ns", namespace.Host, "namespace of end B's TAP")
	fs.StringVar(&c.peerDev, "peer-dev", "", "end B's TAP (required)")
	fs.StringVar(&c.modelFile, "model-file", "", "the model file: JSON, what each direction does (required)")
	fs.StringVar(&c.stateFile, "stats-file", "", "write the model in force and counters here (JSON)")
	fs.StringVar(&c.ovsPort, "ovs-port", "", "a or b: that end is a port of Open vSwitch's userspace datapath")
	fs.StringVar(&cpus, "cpus", "", `run on these CPUs only, a list such as "1" or "0-1"`)
	def := string(PriorityRealtime)
	if v := os.Getenv(PriorityEnv); v != "" {
		def = v
	}
	prio := fs.String("priority", def, "realtime (SCHED_FIFO 1), high (nice -10) or normal; the best allowed below it is taken (default: $"+PriorityEnv+", else realtime)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, d := range []struct{ flag, v string }{{"--dev", c.dev}, {"--peer-dev", c.peerDev}} {
		if d.v == "" {
			return c, fmt.Errorf("%s is required", d.flag)
		}
		if err := tundev.CheckName(d.v); err != nil {
			return c, fmt.Errorf("%s: %w", d.flag, err)
		}
	}
	if c.ns == c.peerNS && c.dev == c.peerDev {
		return c, errors.New("--dev and --peer-dev name the same TAP")
	}
	if c.modelFile == "" {
		return c, errors.New("--model-file is required")
	}
	switch c.priority = Priority(*prio); c.priority {
	case PriorityRealtime, PriorityHigh, PriorityNormal:
	default:
		return c, fmt.Errorf("--priority %q: want realtime, high or normal", *prio)
	}
	if c.ovsPort != "" && c.ovsPort != "a" && c.ovsPort != "b" {
		return c, fmt.Errorf("--ovs-port %q: want a or b", c.ovsPort)
	}
	if cpus != "" {
		var err error
		if c.cpus, err = topology.ParseCPUList(cpus); err != nil {
			return c, fmt.Errorf("--cpus: %w", err)
		}
	}
	return c, nil
}

// Main is the body of `netlab emulate`: see usage. It returns the exit
// code: 0 after SIGTERM or SIGINT, 1 on a runtime error (a TAP deleted
// under it too), 2 on a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "netlab emulate: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := run(ctx, c, hup, stderr); err != nil {
		fmt.Fprintf(stderr, "netlab emulate: %v\n", err)
		return 1
	}
	return 0
}

// end is one TAP of the link, attached.
type end struct {
	ns, dev string
	f       *os.File
	flags   *ifFlags // reads the TAP's administrative state
}

// attach attaches one queue to the TAP dev in namespace ns, with a
// virtio_net_hdr and offloads, and opens what reads its flags there.
func attach(ns, dev string, off tundev.Offload) (*end, error) {
	h, err := namespace.Open(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	e := &end{ns: ns, dev: dev}
	var q []tundev.Queue
	err = namespace.Do(h, func() error {
		var err error
		if q, err = tundev.Attach(dev, tundev.TAP, tundev.WithVnetHdr(off)); err != nil {
			return err
		}
		e.flags, err = openIfFlags(dev)
		return err
	})
	if err != nil {
		for _, x := range q {
			x.Close()
		}
		return nil, fmt.Errorf("ns %s: %w", ns, err)
	}
	if e.f, err = q[0].File(); err != nil {
		q[0].Close()
		e.flags.close()
		return nil, err
	}
	return e, nil
}

func (e *end) close() {
	e.f.Close()
	e.flags.close()
}

// run attaches both ends, drops privileges and carries frames until ctx is
// done or a pump fails.
func run(ctx context.Context, c config, hup <-chan os.Signal, stderr io.Writer) error {
	if c.cpus != nil {
		if err := reflector.SetAffinity(c.cpus); err != nil {
			return err
		}
	}
	m, err := ReadModel(c.modelFile)
	if err != nil {
		return err
	}
	pa, pb, err := bothParams(m)
	if err != nil {
		return err
	}
	clk, err := newClock()
	if err != nil {
		return err
	}
	seed := m.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	mk := func(name string, p linkmodel.Params, plain bool, s uint64) (*pump, error) {
		model, err := linkmodel.New[*frame](p, s, clk.now())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		t, err := newTimer(clk)
		if err != nil {
			return nil, err
		}
		pu := &pump{name: name, plain: plain, clock: clk, timer: t, model: model, perPacket: p.PerPacket()}
		if err := pu.newReadStop(); err != nil {
			t.close()
			return nil, err
		}
		return pu, nil
	}
	ab, err := mk("a->b", pa, c.ovsPort == "b", seed)
	if err != nil {
		return err
	}
	defer ab.closeReadStop()
	ba, err := mk("b->a", pb, c.ovsPort == "a", seed+1)
	if err != nil {
		ab.timer.close()
		return err
	}
	defer ba.closeReadStop()
	schedulersStarted := false
	defer func() {
		if !schedulersStarted { // else closed once they returned
			ab.timer.close()
			ba.timer.close()
		}
	}()
	a, err := attach(c.ns, c.dev, ab.offloads())
	if err != nil {
		return err
	}
	defer a.close()
	b, err := attach(c.peerNS, c.peerDev, ba.offloads())
	if err != nil {
		return err
	}
	defer b.close()
	ab.src, ab.dst, ba.src, ba.dst = a.f, b.f, b.f, a.f
	got, err := raisePriority(c.priority)
	if err != nil {
		return fmt.Errorf("priority %s: %w", c.priority, err)
	}
	if err := reflector.DropAllCapabilities(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // guards st
	st := State{Pid: os.Getpid(), Generation: m.Generation, A: m.A, B: m.B, Priority: got}
	carrier := newCarrier(a, b)
	snapshot := func() State {
		mu.Lock()
		defer mu.Unlock()
		s := st
		s.AtoB, s.BtoA = ab.stats(), ba.stats()
		s.WriteErrors = ab.writeErrs.Load() + ba.writeErrs.Load()
		s.CarrierA, s.CarrierB = carrier.state()
		s.TraceAtoB, s.TraceBtoA = ab.traceStart(), ba.traceStart()
		s.LateAtoB, s.LateBtoA = ab.lateStats(), ba.lateStats()
		s.Updated = time.Now().UTC()
		return s
	}
	save := func() {
		if c.stateFile == "" {
			return
		}
		if err := writeJSON(c.stateFile, snapshot()); err != nil {
			fmt.Fprintf(stderr, "netlab emulate: state: %v\n", err)
		}
	}

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	schedulersStarted = true
	for _, p := range []*pump{ab, ba} {
		wg.Go(func() {
			if err := p.read(); err != nil {
				errc <- err
			}
			cancel() // a TAP gone stops the link
		})
		wg.Go(func() {
			defer p.timer.close()
			if err := p.schedule(); err != nil {
				errc <- err
			}
			cancel()
		})
	}
	carrier.update()
	save()
	fmt.Fprintf(stderr, "netlab emulate: %s/%s <-> %s/%s (priority %s): a->b %s; b->a %s\n", c.ns, c.dev, c.peerNS, c.peerDev, got, m.A, m.B)
	tick := time.NewTicker(StateInterval)
	defer tick.Stop()
	poll := time.NewTicker(carrierPoll)
	defer poll.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-poll.C:
			carrier.update()
		case <-tick.C:
			save()
		case <-hup:
			nm, err := reload(c.modelFile, ab, ba)
			mu.Lock()
			if err != nil {
				st.Error = err.Error()
				fmt.Fprintf(stderr, "netlab emulate: reload: %v (the model before stays)\n", err)
			} else {
				st.Generation, st.A, st.B, st.Error = nm.Generation, nm.A, nm.B, ""
				sa, sb := ab.stats(), ba.stats()
				st.KeptAtoB, st.KeptBtoA = sa.Queued+sa.InFlight, sb.Queued+sb.InFlight
				fmt.Fprintf(stderr, "netlab emulate: generation %d: a->b %s; b->a %s\n", nm.Generation, nm.A, nm.B)
			}
			mu.Unlock()
			save()
		}
	}
	// Wake every loop: the readers' eventfds end their polls, a stopped
	// timer its scheduler. The TAPs close (deferred) once no loop uses
	// them.
	ab.stopRead()
	ba.stopRead()
	ab.timer.stop()
	ba.timer.stop()
	wg.Wait()
	ab.drain()
	ba.drain()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	save()
	final := snapshot()
	fmt.Fprintf(stderr, "netlab emulate: stopped: a->b %d in, %d out, %d lost, %d dropped; b->a %d in, %d out, %d lost, %d dropped\n",
		final.AtoB.In, final.AtoB.Out, final.AtoB.Lost, final.AtoB.Dropped, final.BtoA.In, final.BtoA.Out, final.BtoA.Lost, final.BtoA.Dropped)
	return errors.Join(errs...)
}

// bothParams are the models of both directions of a model file.
func bothParams(m *ModelFile) (linkmodel.Params, linkmodel.Params, error) {
	pa, err := Params(m.A, m.Traces)
	if err != nil {
		return pa, pa, fmt.Errorf("a->b: %w", err)
	}
	pb, err := Params(m.B, m.Traces)
	if err != nil {
		return pa, pb, fmt.Errorf("b->a: %w", err)
	}
	return pa, pb, nil
}

// reload reads the model file again and applies it to both directions, or
// to neither when it is not valid.
func reload(path string, ab, ba *pump) (*ModelFile, error) {
	m, err := ReadModel(path)
	if err != nil {
		return nil, err
	}
	pa, pb, err := bothParams(m)
	if err != nil {
		return nil, err
	}
	return m, errors.Join(ab.setParams(pa), ba.setParams(pb))
}
