package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/netlab-dev/netlab/internal/check"
	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/topology"
)

// check: netlab check LAB|FILE [--json] [--timeout D] runs the expectations
// of the lab's file against the running lab and exits 1 if any fails.
func (a *app) check(args []string) int {
	fs := a.flags("check", "LAB|FILE [--prefix P] [--json] [--timeout 2s]")
	prefix := prefixFlag(fs)
	asJSON := fs.Bool("json", false, "print the results as JSON")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each probe")
	wait := fs.Duration("wait", 0, "retry until every expectation passes and every service is ready, for at most this long (e.g. 60s for routing to converge)")
	machine := machineFlag(fs)
	pos, code, ok := positional(fs, args, 1, 1)
	if !ok {
		return code
	}
	if a.sandbox != "" {
		return a.enter("check", args)
	}
	eng := a.engine(nil)
	lab, code := a.labPart("check", pos[0], *prefix, *machine)
	if lab == nil {
		return code
	}
	if len(lab.Elsewhere) > 0 && !*asJSON {
		fmt.Fprintf(a.stdout, "lab %s: machine %s's part: %d expectations start on other machines (run check there)\n", lab.Name, lab.Machine, len(lab.Elsewhere))
	}
	if len(lab.Expect) == 0 && len(lab.Elsewhere) > 0 {
		return exitOK
	}
	if len(lab.Expect) == 0 && !hasServices(lab) {
		fmt.Fprintf(a.stderr, "netlab: check: %s has no expect: entries\n", lab.File)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	settled := eng.Settle(ctx, lab, *timeout, *wait)
	results := settled.Results
	failed := len(settled.NotReady)
	for _, r := range results {
		if !r.Pass {
			failed++
		}
	}
	if *asJSON {
		rows := []checkRow{}
		for _, r := range results {
			c := string(r.Kind)
			if r.Kind != check.Ping {
				c = fmt.Sprintf("%s/%d", r.Kind, r.Port)
			}
			rows = append(rows, checkRow{r.Index, r.From, r.To, r.Addr.String(), c, r.Want, r.Got, r.Pass, r.Detail, r.Duration.Milliseconds()})
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(checkJSON{Lab: lab.Name, Passed: len(results) + len(settled.NotReady) - failed, Failed: failed, Results: rows,
			NotReady: settled.NotReady, WaitedMillis: settled.Waited.Milliseconds()}); err != nil {
			return a.fail("check", err)
		}
	} else {
		printSettled(a.stdout, lab.Name, settled, *wait)
	}
	if failed > 0 {
		return exitRuntime
	}
	return exitOK
}

// checkJSON is the shape of `netlab check --json`.
type checkJSON struct {
	Lab     string     `json:"lab"`
	Passed  int        `json:"passed"`
	Failed  int        `json:"failed"`
	Results []checkRow `json:"results"`
	// NotReady are the services not ready, with what their probes saw.
	NotReady     []string `json:"not_ready,omitempty"`
	WaitedMillis int64    `json:"waited_ms,omitempty"`
}

// hasServices says whether the lab runs services (check then waits for
// them even without expectations).
func hasServices(lab *topology.Lab) bool {
	for _, ns := range lab.Namespaces {
		if len(ns.Services) > 0 {
			return true
		}
	}
	return false
}

// printSettled prints the expectations' table and the services not ready.
func printSettled(w io.Writer, lab string, s *engine.Settled, wait time.Duration) {
	if len(s.Results) > 0 {
		fmt.Fprintf(w, "lab %s: %d expectations\n", lab, len(s.Results))
		fmt.Fprint(w, check.Table(s.Results))
	}
	for _, n := range s.NotReady {
		fmt.Fprintf(w, "service %s: not ready\n", n)
	}
	switch {
	case s.OK() && wait > 0:
		fmt.Fprintf(w, "lab %s: settled after %.1fs\n", lab, s.Waited.Seconds())
	case !s.OK() && wait > 0:
		fmt.Fprintf(w, "lab %s: not settled within %s\n", lab, wait)
	}
}

// checkRow is one expectation's result.
type checkRow struct {
	Index  int    `json:"index"`
	From   string `json:"from"`
	To     string `json:"to"`
	Addr   string `json:"addr"`
	Check  string `json:"check"`
	Want   bool   `json:"want"`
	Got    bool   `json:"got"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
	Millis int64  `json:"ms"`
}
