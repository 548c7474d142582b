package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/topology"
)

// impairText is status's note of an interface's impairments.
func impairText(l engine.LinkStatus) string {
	if l.Impair == "" {
		return ""
	}
	s := "  impair: " + l.Impair
	if l.Runtime {
		s += " (netlab impair)"
	}
	return s
}

// impairFlags are the flags of netlab impair, as given (unset: "").
type impairFlags struct {
	rate, delay, jitter, loss, duplicate, corrupt, reorder string
	limit                                                  int
}

// apply sets the given flags onto im, checking each value as the file's.
func (f *impairFlags) apply(fs *flag.FlagSet, im *topology.Impair) error {
	var errs []error
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	pct := func(name, v string, to *float64) {
		if !set[name] {
			return
		}
		p, msg := topology.ParsePercent(v)
		if msg != "" {
			errs = append(errs, fmt.Errorf("--%s: %s", name, msg))
		}
		*to = p
	}
	if set["rate"] {
		if f.rate == "0" || f.rate == "" {
			im.Rate = 0
		} else if r, msg := topology.ParseRate(f.rate); msg != "" {
			errs = append(errs, fmt.Errorf("--rate: %s", msg))
		} else {
			im.Rate = r
		}
	}
	for _, d := range []struct {
		name, v string
		delay   bool
	}{{"delay", f.delay, true}, {"jitter", f.jitter, false}} {
		if !set[d.name] {
			continue
		}
		v, msg := topology.ParseDelay(d.v)
		if msg != "" {
			errs = append(errs, fmt.Errorf("--%s: %s", d.name, msg))
		}
		if d.delay {
			im.Delay = v
		} else {
			im.Jitter = v
		}
	}
	pct("loss", f.loss, &im.Loss)
	pct("duplicate", f.duplicate, &im.Duplicate)
	pct("corrupt", f.corrupt, &im.Corrupt)
	pct("reorder", f.reorder, &im.Reorder)
	if set["limit"] {
		if f.limit < 0 || f.limit > topology.MaxQueueLen {
			errs = append(errs, fmt.Errorf("--limit: %d is out of range 0..%d", f.limit, topology.MaxQueueLen))
		}
		im.Limit = f.limit
	}
	if im.Jitter != 0 && im.Delay == 0 {
		errs = append(errs, errors.New("--jitter varies a delay: it needs --delay as well"))
	}
	if im.Jitter > im.Delay && im.Delay != 0 {
		errs = append(errs, fmt.Errorf("jitter %s is larger than delay %s", im.Jitter, im.Delay))
	}
	if im.Reorder != 0 && im.Delay == 0 {
		errs = append(errs, errors.New("--reorder needs --delay as well"))
	}
	return errors.Join(errs...)
}

// impair: netlab impair LAB NS/IFACE [--rate R] [--loss P] ... | --clear |
// --reset. Changes one interface's impairments of a running lab at run
// time; the given values replace those in force (the others stay),
// --clear starts from none, --reset gives the interface the file's back.
// Idempotent: the same values again change nothing.
func (a *app) impair(args []string) int {
	fs := a.flags("impair", "LAB NS/IFACE [--rate 1mbit] [--loss 5%] [--delay 20ms --jitter 5ms] [--duplicate P] [--corrupt P] [--reorder P] [--limit N] | --clear | --reset")
	var f impairFlags
	fs.StringVar(&f.rate, "rate", "", "rate limit in tc units (20mbit, 1gbit, 500kbit); 0: none")
	fs.StringVar(&f.delay, "delay", "", "added delay (20ms); needs sch_netem")
	fs.StringVar(&f.jitter, "jitter", "", "variation of the delay (5ms); needs sch_netem")
	fs.StringVar(&f.loss, "loss", "", "packets dropped on egress, percent (5%)")
	fs.StringVar(&f.duplicate, "duplicate", "", "packets sent twice, percent; needs sch_netem")
	fs.StringVar(&f.corrupt, "corrupt", "", "packets with a flipped bit, percent; needs sch_netem")
	fs.StringVar(&f.reorder, "reorder", "", "packets not delayed, percent (needs --delay); needs sch_netem")
	fs.IntVar(&f.limit, "limit", 0, "queue length in packets; 0: the default")
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
	case a.sandbox != "":
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
		usage = f.apply(fs, im)
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
	fmt.Fprintf(a.stdout, "lab %s: %s/%s: %s (%s)\n", lab, ns, link, im, from)
	return exitOK
}
