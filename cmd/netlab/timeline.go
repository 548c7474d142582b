package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/timeline"
	"github.com/netlab-dev/netlab/topology"
)

const timelineUsage = "LAB [status] [--json] | start NAME... | stop [NAME...] [--reset] | log NAME [--json]"

// timelineVerb: netlab timeline LAB [status|start NAME...|stop
// [NAME...]|log NAME]. Runs the lab's timelines of events (the file's
// timelines:) in a supervised process of the lab, and says where they are.
// Idempotent: a timeline running already is up to date, one stopped
// already is said so.
func (a *app) timelineVerb(args []string) int {
	fs := a.flags("timeline", timelineUsage)
	asJSON := fs.Bool("json", false, "print as JSON (status, log)")
	reset := fs.Bool("reset", false, "stop: give the file's state back to everything the timeline touches (cables plugged in, its partitions healed, the file's impairments)")
	pos, code, ok := positional(fs, args, 1, -1)
	if !ok {
		return code
	}
	lab := pos[0]
	if !validLabName(lab) {
		fmt.Fprintf(a.stderr, "netlab timeline: %q is not a lab name ([a-z0-9-])\n", lab)
		return exitUsage
	}
	sub, names := "status", pos[1:]
	if len(pos) > 1 {
		sub, names = pos[1], pos[2:]
	}
	usage := func(msg string) int {
		fmt.Fprintf(a.stderr, "netlab timeline: %s\n", msg)
		fs.Usage()
		return exitUsage
	}
	for _, n := range names {
		if !validTimelineName(n) {
			return usage(fmt.Sprintf("%q is not a timeline name ([a-z0-9-])", n))
		}
	}
	switch {
	case sub != "status" && sub != "start" && sub != "stop" && sub != "log":
		return usage(fmt.Sprintf("want status, start, stop or log, got %q", sub))
	case sub == "start" && len(names) == 0:
		return usage("start: name the timelines of the lab's file to start")
	case sub == "log" && len(names) != 1:
		return usage("log: name one timeline")
	case sub == "status" && len(names) > 0:
		return usage("status takes no name")
	case *reset && sub != "stop":
		return usage("--reset goes with stop")
	case *asJSON && sub != "status" && sub != "log":
		return usage("--json goes with status and log")
	case a.sandbox != "":
		return a.enter("timeline", args)
	}
	e := a.engine(nil)
	switch sub {
	case "start":
		for _, n := range names {
			res, err := e.StartFileTimeline(lab, n)
			if err != nil {
				return a.fail("timeline "+lab+" start "+n, err)
			}
			for _, act := range res.Plan {
				fmt.Fprintln(a.stdout, act)
			}
			steps := timeline.New(res.Timeline.Events).Len()
			what := fmt.Sprintf("%d steps", steps)
			if steps < 0 {
				what = "until stopped"
			}
			done := "started"
			if res.UpToDate {
				done = "up to date: running"
			}
			fmt.Fprintf(a.stdout, "lab %s: timeline %s: %s (%d events, %s; netlab timeline %s stop %s ends it)\n", lab, n, done, len(res.Timeline.Events), what, lab, n)
		}
		return exitOK
	case "stop":
		res, err := e.StopTimeline(lab, *reset, names...)
		if res != nil {
			for _, act := range res.Plan {
				fmt.Fprintln(a.stdout, act)
			}
		}
		if err != nil {
			return a.fail("timeline "+lab+" stop", err)
		}
		left := "what its steps set stays (--reset gives the file's state back)"
		if *reset {
			left = "the file's state is back to what it touches"
		}
		for _, n := range res.Stopped {
			fmt.Fprintf(a.stdout, "lab %s: timeline %s: stopped; %s\n", lab, n, left)
		}
		for _, n := range res.Missing {
			fmt.Fprintf(a.stdout, "lab %s: timeline %s: not running\n", lab, n)
		}
		if len(res.Stopped)+len(res.Missing) == 0 {
			fmt.Fprintf(a.stdout, "lab %s: no timeline running\n", lab)
		}
		return exitOK
	case "log":
		entries, err := e.TimelineLog(lab, names[0])
		if err != nil {
			return a.fail("timeline "+lab+" log", err)
		}
		if *asJSON {
			if entries == nil {
				entries = []timeline.Entry{}
			}
			return a.printJSON("timeline", entries)
		}
		for _, en := range entries {
			fmt.Fprintln(a.stdout, en.Text())
		}
		return exitOK
	}
	st, err := e.Timelines(lab)
	if err != nil {
		return a.fail("timeline "+lab, err)
	}
	if *asJSON {
		if st == nil {
			st = []engine.TimelineStatus{}
		}
		return a.printJSON("timeline", st)
	}
	if len(st) == 0 {
		fmt.Fprintf(a.stdout, "lab %s: no timelines (timelines: in the file, or a test's)\n", lab)
	}
	printTimelines(a.stdout, lab, "", st)
	return exitOK
}

// validTimelineName says whether s may name a timeline (as the file's
// keys: a-z, 0-9 and -, at most topology.MaxTimelineName).
func validTimelineName(s string) bool {
	if s == "" || len(s) > topology.MaxTimelineName || s[0] == '-' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

func (a *app) printJSON(verb string, v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.fail(verb, err)
	}
	return exitOK
}

// printTimelines prints where each timeline is, one line each, and its
// next step.
func printTimelines(w io.Writer, lab, indent string, st []engine.TimelineStatus) {
	for _, t := range st {
		steps := fmt.Sprintf("%d of %d steps", t.Done, t.Steps)
		if t.Steps < 0 {
			steps = fmt.Sprintf("%d steps (until stopped)", t.Done)
		}
		line := fmt.Sprintf("%stimeline %s: %s, %s", indent, t.Name, t.State, steps)
		if t.Failed > 0 {
			line += fmt.Sprintf(", %d failed", t.Failed)
		}
		if t.PID != 0 {
			line += fmt.Sprintf(", pid %d", t.PID)
		}
		if t.Restarts > 0 {
			line += fmt.Sprintf(", restarted %d times", t.Restarts)
		}
		switch t.State {
		case "not running":
			line += " (its runner died"
			if t.Exit != "" {
				line += ": " + t.Exit
			}
			line += "; netlab up starts it again, where it was)"
		case "not started":
			line += " (netlab timeline " + lab + " start " + t.Name + ")"
		}
		fmt.Fprintln(w, line)
		if t.Next != nil {
			when := t.Next.Planned
			if when == "" {
				when = "once its clock starts"
			}
			fmt.Fprintf(w, "%s  next: step %d at %s: %s\n", indent, t.Next.Step, when, t.Next.Action)
		}
		if t.Last != nil {
			fmt.Fprintf(w, "%s  last: %s\n", indent, strings.TrimSpace(t.Last.Text()))
		}
	}
}

// timelineRun: netlab timeline-run SPEC is a timeline's runner, which its
// supervisor starts (not for direct use): it carries out the timeline's
// steps at their times until they are done or it is told to stop (then it
// finishes the step it is carrying out).
func (a *app) timelineRun(args []string) int {
	if len(args) != 1 || wantsHelp(args) {
		fmt.Fprintln(a.stderr, "Usage: netlab timeline-run SPEC   (started by a timeline's supervisor; not for direct use)")
		return exitUsage
	}
	root, lab, name, err := engine.TimelineOfSpec(args[0])
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab timeline-run: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	a.root = root
	if err := a.engine(nil).RunTimeline(ctx, lab, name, a.stderr); err != nil {
		fmt.Fprintf(a.stderr, "netlab timeline-run: lab %s: timeline %s: %v\n", lab, name, err)
		return exitRuntime
	}
	return exitOK
}
