package main

import (
	"fmt"
	"io"

	"github.com/netlab-dev/netlab/internal/engine"
)

// up: netlab up FILE. Idempotent: on a converged lab it prints "up to date"
// and changes nothing.
func (a *app) up(args []string) int {
	fs := a.flags("up", "FILE")
	prefix := prefixFlag(fs)
	quiet := fs.Bool("q", false, "do not print the actions as they are applied")
	force := fs.Bool("force", false, "attach an external interface even if it carries the host's default route")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	lab, code := a.loadLab(pos[0], *prefix)
	if lab == nil {
		return code
	}
	log := a.stdout
	if *quiet {
		log = io.Discard
	}
	eng := a.engine(log, engine.WithForce(*force))
	for _, w := range eng.Warnings(lab) {
		fmt.Fprintf(a.stderr, "netlab: warning: %s\n", w)
	}
	res, err := eng.Up(lab, *prefix)
	if err != nil {
		return a.fail("up "+pos[0], err)
	}
	if len(res.Plan) == 0 {
		fmt.Fprintf(a.stdout, "lab %s: up to date\n", lab.Name)
		return exitOK
	}
	fmt.Fprintf(a.stdout, "lab %s: up (%d actions)\n", lab.Name, len(res.Plan))
	return exitOK
}
