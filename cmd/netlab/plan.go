package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/netlab-dev/netlab/internal/plan"
)

// plan: netlab plan FILE [--json]. A dry run: prints the commands up would
// run, changes nothing (not even starting Open vSwitch).
func (a *app) plan(args []string) int {
	fs := a.flags("plan", "FILE [--json]")
	prefix := prefixFlag(fs)
	asJSON := fs.Bool("json", false, "print the actions as JSON")
	machine := machineFlag(fs)
	pos, code, ok := positional(fs, args, 1, 1)
	if !ok {
		return code
	}
	if a.sandbox != "" {
		return a.enter("plan", args)
	}
	lab, code := a.loadLab(pos[0], *prefix)
	if lab == nil {
		return code
	}
	if lab, _, code = a.part("plan "+pos[0], lab, *machine); lab == nil {
		return code
	}
	eng := a.engine(io.Discard)
	for _, w := range eng.Warnings(lab) {
		fmt.Fprintf(a.stderr, "netlab: warning: %s\n", w)
	}
	p, err := eng.Plan(lab)
	if err != nil {
		return a.fail("plan "+pos[0], err)
	}
	if *asJSON {
		if p == nil {
			p = plan.Plan{}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return a.fail("plan", err)
		}
		return exitOK
	}
	if len(p) == 0 {
		fmt.Fprintf(a.stdout, "lab %s: up to date\n", lab.Name)
		return exitOK
	}
	fmt.Fprint(a.stdout, p.String())
	return exitOK
}
