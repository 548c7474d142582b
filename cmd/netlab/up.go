package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/topology"
)

// upDone is the last JSON event of `netlab up --json`.
type upDone struct {
	Event    string   `json:"event"` // "done" or "error"
	Lab      string   `json:"lab"`
	Actions  int      `json:"actions"`
	UpToDate bool     `json:"up_to_date"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// up: netlab up FILE. Idempotent: on a converged lab it prints "up to date"
// and changes nothing. Progress: a live line on a terminal, one line per
// action otherwise, one JSON event per action with --json, nothing with -q.
func (a *app) up(args []string) int {
	fs := a.flags("up", "FILE")
	prefix := prefixFlag(fs)
	quiet := fs.Bool("q", false, "print only the result (also --quiet)")
	fs.BoolVar(quiet, "quiet", false, "print only the result")
	asJSON := fs.Bool("json", false, "print one JSON event per action, then a final one")
	force := fs.Bool("force", false, "attach an external interface even if it carries the host's default route")
	machine := machineFlag(fs)
	wait := fs.Duration("wait", 0, "then retry the file's expectations and the services' readiness until all pass, for at most this long (e.g. 60s for routing to converge); exit 1 if they do not")
	pos, code, ok := positional(fs, args, 1, 1)
	if !ok {
		return code
	}
	lab, code := a.loadLab(pos[0], *prefix)
	if lab == nil {
		return code
	}
	if a.sandbox != "" {
		// From the machine into a sandbox: what names the machine's own
		// interfaces cannot follow the lab there.
		if errs := topology.SandboxErrors(lab); len(errs) > 0 {
			return a.fail("up "+pos[0], errs)
		}
	}
	if users := engine.TUNUsers(lab); len(users) > 0 {
		if ok, why, fix := sandbox.TunUsable(); !ok {
			// Refused before anything is made; the file's own errors are
			// said too, so a user fixes both at once.
			if err := engine.CheckFlows(lab); err != nil {
				a.fail("up "+pos[0], err)
			}
			fmt.Fprintf(a.stderr, "netlab: up %s: %s needs /dev/net/tun: %s\nnetlab: fix: %s\n", pos[0], strings.Join(users, ", "), why, fix)
			return exitRuntime
		}
	}
	if a.sandbox != "" {
		return a.enter("up", args)
	}
	lab, how, code := a.part("up "+pos[0], lab, *machine)
	if lab == nil {
		return code
	}
	if how != "" && !*quiet && !*asJSON {
		fmt.Fprintf(a.stdout, "lab %s: machine %s's part (%s)\n", lab.Name, lab.Machine, how)
	}
	opts := []engine.Option{engine.WithForce(*force)}
	var log io.Writer = a.stdout
	var live *liveLine
	var events *jsonEvents
	switch width := terminalWidth(a.stdout); {
	case *asJSON:
		log, events = io.Discard, newJSONEvents(a.stdout)
		opts = append(opts, engine.WithProgress(func(ev engine.Event) { events.write(ev) }))
	case *quiet:
		log = io.Discard
	case width > 0:
		log, live = io.Discard, &liveLine{w: a.stdout, width: width}
		opts = append(opts, engine.WithProgress(live.show))
	}
	eng := a.engine(log, opts...)
	warnings := eng.Warnings(lab)
	if events == nil {
		for _, w := range warnings {
			fmt.Fprintf(a.stderr, "netlab: warning: %s\n", w)
		}
	}
	res, err := eng.Up(lab, *prefix)
	if live != nil {
		live.clear()
	}
	if res != nil {
		warnings = append(warnings, res.Warnings...)
		if events == nil {
			for _, w := range res.Warnings {
				fmt.Fprintf(a.stderr, "netlab: warning: %s\n", w)
			}
		}
	}
	if events != nil {
		done := upDone{Event: "done", Lab: lab.Name, Warnings: warnings}
		if res != nil {
			done.Actions, done.UpToDate = len(res.Plan), len(res.Plan) == 0 && err == nil
		}
		if err != nil {
			done.Event, done.Error = "error", err.Error()
		}
		events.write(done)
	}
	if err != nil {
		return a.fail("up "+pos[0], err)
	}
	switch {
	case events != nil:
	case len(res.Plan) == 0:
		fmt.Fprintf(a.stdout, "lab %s: up to date\n", lab.Name)
	default:
		fmt.Fprintf(a.stdout, "lab %s: up (%d actions)\n", lab.Name, len(res.Plan))
	}
	if *wait > 0 {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		settled := eng.Settle(ctx, lab, 2*time.Second, *wait)
		if events == nil && (!*quiet || !settled.OK()) {
			printSettled(a.stdout, lab.Name, settled, *wait)
		}
		if !settled.OK() {
			return exitRuntime
		}
	}
	return exitOK
}
