package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/netlab-dev/netlab/internal/doctor"
)

// doctor: netlab doctor [--json] checks what netlab needs and says how to fix
// what is missing. Exit 1 when the main job (up) cannot run.
func (a *app) doctor(args []string) int {
	fs := a.flags("doctor", "[--json]")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if _, code, ok := positional(fs, args, 0, 0); !ok {
		return code
	}
	findings := doctor.Run()
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		enc.Encode(findings)
	} else {
		tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
		for _, f := range findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Level, f.Check, f.What)
			if f.Fix != "" {
				fmt.Fprintf(tw, "\t\tfix: %s\n", f.Fix)
			}
		}
		tw.Flush()
	}
	if !doctor.CanRun(findings) {
		if !*asJSON {
			fmt.Fprintln(a.stdout, "netlab cannot bring labs up here: see FAIL above")
		}
		return exitRuntime
	}
	if !*asJSON {
		fmt.Fprintln(a.stdout, "netlab can bring labs up here")
	}
	return exitOK
}
