package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/topology"
)

// impairText is status's note of an interface's impairments.
func impairText(l engine.LinkStatus) string {
	if l.Impair == "" && l.Emulator != "" {
		return "  [userspace emulator: " + l.Emulator + "]"
	}
	if l.Impair == "" {
		return ""
	}
	s := "  impair: " + l.Impair
	if l.Runtime {
		s += " (netlab impair)"
	}
	if l.Emulator != "" {
		s += " [userspace emulator: " + l.Emulator + "]"
	}
	return s
}

// impairFlags are the flags of netlab impair, as given (unset: "").
type impairFlags struct {
	rate, delay, jitter, loss, duplicate, corrupt, reorder, limit string
	distribution, ge, trace, emulator                             string
	// set are the flags given; parsed holds each one's value, checked as
	// the file's would be (check), before the lab is touched.
	set    map[string]bool
	parsed topology.Impair
}

// check reads every flag given, as the file's values are read, and says
// what is wrong with each: a usage error, found before the lab is locked.
func (f *impairFlags) check(fs *flag.FlagSet) error {
	var errs []error
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	p := &f.parsed
	pct := func(name, v string, to *float64) {
		if !f.set[name] {
			return
		}
		x, msg := topology.ParsePercent(v)
		if msg != "" {
			errs = append(errs, fmt.Errorf("--%s: %s", name, msg))
		}
		*to = x
	}
	if f.set["rate"] && f.rate != "0" && f.rate != "" {
		r, msg := topology.ParseRate(f.rate)
		if msg != "" {
			errs = append(errs, fmt.Errorf("--rate: %s", msg))
		}
		p.Rate = r
	}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{{"delay", f.delay, &p.Delay}, {"jitter", f.jitter, &p.Jitter}} {
		if !f.set[d.name] {
			continue
		}
		v, msg := topology.ParseDelay(d.v)
		if msg != "" {
			errs = append(errs, fmt.Errorf("--%s: %s", d.name, msg))
		}
		*d.to = v
	}
	pct("loss", f.loss, &p.Loss)
	pct("duplicate", f.duplicate, &p.Duplicate)
	pct("corrupt", f.corrupt, &p.Corrupt)
	pct("reorder", f.reorder, &p.Reorder)
	if f.set["limit"] && f.limit != "0" {
		if n, err := strconv.Atoi(f.limit); err == nil {
			if n < 0 || n > topology.MaxQueueLen {
				errs = append(errs, fmt.Errorf("--limit: %d is out of range 0..%d", n, topology.MaxQueueLen))
			}
			p.Limit = n
		} else if b, msg := topology.ParseSize(f.limit); msg != "" {
			errs = append(errs, fmt.Errorf("--limit: want packets (a number) or a size such as 64kb: %s", msg))
		} else {
			p.LimitBytes = b
		}
	}
	if f.set["distribution"] {
		switch f.distribution {
		case "uniform", "":
		case "normal", "pareto", "paretonormal":
			p.Distribution = f.distribution
		default:
			errs = append(errs, fmt.Errorf("--distribution %q: want uniform, normal, pareto or paretonormal", f.distribution))
		}
	}
	if f.set["gilbert-elliott"] && f.ge != "" && f.ge != "0" {
		g, err := parseGE(f.ge)
		if err != nil {
			errs = append(errs, fmt.Errorf("--gilbert-elliott: %w", err))
		}
		p.GE = g
	}
	if f.set["trace"] && f.trace != "" {
		abs, err := filepath.Abs(f.trace)
		if err == nil {
			_, err = topology.LoadTrace(abs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--trace: %w", err))
		}
		p.Trace = topology.TraceRef{Name: abs} // read again, and kept, under the lab's lock
	}
	if f.set["emulator"] {
		switch f.emulator {
		case "auto", "":
		case topology.EmulatorUserspace, topology.EmulatorKernel:
			p.Emulator = f.emulator
		default:
			errs = append(errs, fmt.Errorf("--emulator %q: want auto, userspace or kernel", f.emulator))
		}
	}
	return errors.Join(errs...)
}

// parseGE reads --gilbert-elliott P,R[,LOSS-BAD[,LOSS-GOOD]] (percentages).
func parseGE(s string) (topology.GilbertElliott, error) {
	g := topology.GilbertElliott{LossBad: 100}
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 4 {
		return g, fmt.Errorf("%q: want P,R[,LOSS-BAD[,LOSS-GOOD]] in percent, such as 1%%,25%%", s)
	}
	to := []*float64{&g.P, &g.R, &g.LossBad, &g.LossGood}
	for i, v := range parts {
		x, msg := topology.ParsePercent(v)
		if msg != "" {
			return g, fmt.Errorf("%s", msg)
		}
		*to[i] = x
	}
	if g.R == 0 && g.P != 0 {
		return g, errors.New("r is 0: the chain would stay in the bad state for ever once there")
	}
	return g, nil
}

// apply sets the flags given onto im, and checks the combination as the
// file's is checked.
func (f *impairFlags) apply(im *topology.Impair) error {
	p := f.parsed
	for name, set := range map[string]func(){
		"rate": func() { im.Rate = p.Rate }, "delay": func() { im.Delay = p.Delay }, "jitter": func() { im.Jitter = p.Jitter },
		"loss": func() { im.Loss = p.Loss }, "duplicate": func() { im.Duplicate = p.Duplicate }, "corrupt": func() { im.Corrupt = p.Corrupt },
		"reorder": func() { im.Reorder = p.Reorder }, "limit": func() { im.Limit, im.LimitBytes = p.Limit, p.LimitBytes },
		"distribution": func() { im.Distribution = p.Distribution }, "gilbert-elliott": func() { im.GE = p.GE },
		"trace": func() { im.Trace = p.Trace }, "emulator": func() { im.Emulator = p.Emulator },
	} {
		if f.set[name] {
			set()
		}
	}
	var errs []error
	if im.Jitter != 0 && im.Delay == 0 {
		errs = append(errs, errors.New("--jitter varies a delay: it needs --delay as well"))
	}
	if im.Jitter > im.Delay && im.Delay != 0 {
		errs = append(errs, fmt.Errorf("jitter %s is larger than delay %s", im.Jitter, im.Delay))
	}
	if im.Reorder != 0 && im.Delay == 0 {
		errs = append(errs, errors.New("--reorder needs --delay as well"))
	}
	if im.Distribution != "" && im.Jitter == 0 {
		errs = append(errs, errors.New("--distribution shapes the jitter: it needs --jitter as well"))
	}
	if !im.Trace.IsZero() && im.Rate != 0 {
		errs = append(errs, errors.New("a trace and a rate both set the link's capacity: give one (--rate 0 lifts the rate)"))
	}
	if !im.GE.IsZero() && im.Loss != 0 {
		errs = append(errs, errors.New("--gilbert-elliott is a loss model: give it or --loss, not both (--loss 0 lifts the loss)"))
	}
	if im.Emulator == topology.EmulatorKernel {
		for _, field := range im.EmulatorFields() {
			errs = append(errs, fmt.Errorf("%s needs netlab's userspace emulator, and --emulator kernel was asked", field))
		}
	}
	return errors.Join(errs...)
}

// impair: netlab impair LAB NS/IFACE [--rate R] [--loss P] ... | --clear |
// --reset. Changes one interface's impairments of a running lab at run
// time; the given values replace those in force (the others stay),
// --clear starts from none, --reset gives the interface the file's back.
// Idempotent: the same values again change nothing.
func (a *app) impair(args []string) int {
	fs := a.flags("impair", "LAB NS/IFACE [--rate 1mbit] [--loss 5%] [--delay 20ms --jitter 5ms [--distribution normal]] [--duplicate P] [--corrupt P] [--reorder P] [--limit N|SIZE] [--gilbert-elliott P,R[,LB[,LG]]] [--trace FILE] [--emulator auto|userspace|kernel] | --clear | --reset")
	var f impairFlags
	fs.StringVar(&f.rate, "rate", "", "rate limit in tc units (20mbit, 1gbit, 500kbit); 0: none")
	fs.StringVar(&f.delay, "delay", "", "added delay (20ms)")
	fs.StringVar(&f.jitter, "jitter", "", "variation of the delay (5ms)")
	fs.StringVar(&f.distribution, "distribution", "", "the jitter's: uniform (default), normal, pareto, paretonormal")
	fs.StringVar(&f.loss, "loss", "", "packets dropped on egress, percent (5%)")
	fs.StringVar(&f.ge, "gilbert-elliott", "", "Gilbert-Elliott losses: P,R[,LOSS-BAD[,LOSS-GOOD]] in percent (1%,25%); 0: none")
	fs.StringVar(&f.duplicate, "duplicate", "", "packets sent twice, percent")
	fs.StringVar(&f.corrupt, "corrupt", "", "packets with a flipped bit, percent")
	fs.StringVar(&f.reorder, "reorder", "", "packets not delayed, percent (needs --delay)")
	fs.StringVar(&f.limit, "limit", "", "queue length: packets (100) or bytes (64kb); 0: the default")
	fs.StringVar(&f.trace, "trace", "", "replay a Mahimahi trace file as the link's capacity; \"\": none")
	fs.StringVar(&f.emulator, "emulator", "", "who carries the link: auto (the kernel where it can), userspace, kernel")
	clear := fs.Bool("clear", false, "remove every impairment of the interface (then apply the values given)")
	reset := fs.Bool("reset", false, "give the interface the file's impairments back")
	pos, code, ok := positional(fs, args, 2, 2)
	if !ok {
		return code
	}
	lab := pos[0]
	ns, link, ok := strings.Cut(pos[1], "/")
	if !ok || ns == "" || link == "" {
		fmt.Fprintf(a.stderr, "netlab impair: want NS/IFACE (host/IFACE for a host-side end or bridge port), got %q\n", pos[1])
		return exitUsage
	}
	nflags := 0
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "clear" && fl.Name != "reset" {
			nflags++
		}
	})
	switch {
	case *reset && (nflags > 0 || *clear):
		fmt.Fprintln(a.stderr, "netlab impair: --reset takes no other flag")
		return exitUsage
	case !*reset && nflags == 0 && !*clear:
		fs.Usage()
		return exitUsage
	}
	if err := f.check(fs); err != nil {
		fmt.Fprintf(a.stderr, "netlab impair: %v\n", err)
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("impair", args)
	}
	e := a.engine(nil) // the actions are printed once done
	if *reset {
		res, err := e.Impair(lab, ns, link, nil)
		if err != nil {
			return a.fail("impair "+lab+" "+pos[1], err)
		}
		return a.impairDone(e, lab, ns, link, res)
	}
	// The flags are applied to the impairment in force under the lab's
	// lock (a concurrent impair's change is not lost).
	var usage error
	res, err := e.Impair(lab, ns, link, func(im *topology.Impair) error {
		if *clear {
			*im = topology.Impair{}
		}
		usage = f.apply(im)
		return usage
	})
	if usage != nil {
		fmt.Fprintf(a.stderr, "netlab impair: %v\n", usage)
		return exitUsage
	}
	if err != nil {
		return a.fail("impair "+lab+" "+pos[1], err)
	}
	return a.impairDone(e, lab, ns, link, res)
}

func (a *app) impairDone(e *engine.Engine, lab, ns, link string, res *engine.Result) int {
	im, runtime, err := e.CurrentImpair(lab, ns, link)
	if err != nil {
		return a.fail("impair "+lab, err)
	}
	from := "the file's"
	if runtime {
		from = "set at run time; netlab impair --reset gives the file's back"
	}
	if len(res.Plan) == 0 {
		fmt.Fprintf(a.stdout, "lab %s: %s/%s: up to date: %s (%s)\n", lab, ns, link, im, from)
		return exitOK
	}
	for _, act := range res.Plan {
		fmt.Fprintln(a.stdout, act)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(a.stderr, "netlab impair: %s\n", w)
	}
	fmt.Fprintf(a.stdout, "lab %s: %s/%s: %s (%s)\n", lab, ns, link, im, from)
	return exitOK
}
