package main

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/service"
)

// supervise: netlab supervise SPEC is the supervisor of one service that up
// starts (not for direct use): it runs the program, restarts it as its
// policy says, and ends it when told to stop.
func (a *app) supervise(args []string) int {
	if len(args) != 1 || wantsHelp(args) {
		fmt.Fprintln(a.stderr, "Usage: netlab supervise SPEC   (started by netlab up for a service; not for direct use)")
		return exitUsage
	}
	if err := service.Supervise(args[0]); err != nil {
		fmt.Fprintf(a.stderr, "netlab supervise: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// viewExec: netlab view-exec SPEC [-- CMD...] becomes a service's program in
// its namespace's view (or, given one, another command in the same view: a
// readiness probe). Started by a service's supervisor; not for direct use.
func (a *app) viewExec(args []string) int {
	if len(args) < 1 || wantsHelp(args) || len(args) > 1 && args[1] != "--" || len(args) == 2 {
		fmt.Fprintln(a.stderr, "Usage: netlab view-exec SPEC [-- CMD [ARGS...]]   (started by a service's supervisor; not for direct use)")
		return exitUsage
	}
	var argv []string
	if len(args) > 2 {
		argv = args[2:]
	}
	err := service.Exec(args[0], argv)
	fmt.Fprintf(a.stderr, "netlab view-exec: %v\n", err) // only reached when it failed
	return 127
}
