package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/netlab-dev/netlab/internal/check"
)

// check: netlab check LAB|FILE [--json] [--timeout D] runs the expectations
// of the lab's file against the running lab and exits 1 if any fails.
func (a *app) check(args []string) int {
	fs := a.flags("check", "LAB|FILE [--prefix P] [--json] [--timeout 2s]")
	prefix := prefixFlag(fs)
	asJSON := fs.Bool("json", false, "print the results as JSON")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout of each probe")
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
	if len(lab.Expect) == 0 {
		fmt.Fprintf(a.stderr, "netlab: check: %s has no expect: entries\n", lab.File)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results := eng.Check(ctx, lab, *timeout)
	failed := 0
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
		if err := enc.Encode(checkJSON{Lab: lab.Name, Passed: len(results) - failed, Failed: failed, Results: rows}); err != nil {
			return a.fail("check", err)
		}
	} else {
		fmt.Fprintf(a.stdout, "lab %s: %d expectations\n", lab.Name, len(results))
		fmt.Fprint(a.stdout, check.Table(results))
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
