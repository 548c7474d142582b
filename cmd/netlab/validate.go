package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/topology"
)

// validate: netlab validate FILE... Checks every file, prints every error.
// As root it also checks the machine: names the lab would create that
// already belong to someone else (the same check up makes before it acts).
func (a *app) validate(args []string) int {
	fs := a.flags("validate", "FILE...")
	prefix := prefixFlag(fs)
	static := fs.Bool("static", false, "check the file only, not the machine")
	pos, code, ok := positional(fs, args, 1, -1)
	if !ok {
		return code
	}
	// For a sandbox the machine checks would be the sandbox's: the file is
	// checked for what a lab cannot take from the machine into one instead.
	machine := !*static && os.Geteuid() == 0 && a.sandbox == ""
	code = exitOK
	for _, path := range pos {
		lab, c := a.loadLab(path, *prefix)
		if lab == nil {
			code = c
			continue
		}
		if errs := topology.SandboxErrors(lab); a.sandbox != "" && len(errs) > 0 {
			code = a.fail("validate "+path, errs)
			continue
		}
		if machine {
			if _, err := a.engine(io.Discard).Plan(lab); err != nil {
				code = a.fail("validate "+path, err)
				if errors.As(err, new(*topology.FeatureError)) {
					code = exitUsage // the file asks what this machine cannot give, like a clash
				}
				continue
			}
		} else if err := engine.CheckFlows(lab); err != nil {
			// Raw flows are checked by Open vSwitch itself (ovs-ofctl
			// parse-flows), which needs no privilege.
			code = a.fail("validate "+path, err)
			continue
		}
		what := "valid"
		switch {
		case a.sandbox != "" && !*static:
			what += " (file only, for sandbox " + a.sandbox + ")"
		case !machine:
			what += " (file only; machine not checked: needs root)"
		}
		if *static {
			what = "valid (file only)"
		}
		fmt.Fprintf(a.stdout, "%s: lab %s is %s: %d namespaces, %d bridges, %d links\n",
			path, lab.Name, what, len(lab.Namespaces), len(lab.Bridges), len(lab.Links))
	}
	return code
}
