package main

import (
	"errors"
	"fmt"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/view"
)

// exec: netlab exec LAB NS -- CMD ARGS... runs a command inside one of the
// lab's namespaces, as its services run: in the namespace's view (like `ip
// netns exec`, /etc/netns/<ns> files apply and /sys shows the namespace's
// devices; and the lab's hosts file, the namespace's files and private
// directories are there). NS may be the name in the file or on the machine
// (with the lab's prefix). The command replaces netlab, so its exit code,
// signals and terminal are the command's own.
func (a *app) exec(args []string) int {
	fs := a.flags("exec", "LAB NS -- CMD [ARGS...]")
	if wantsHelp(args) {
		fs.Usage()
		return exitOK
	}
	lab, ns, cmd, ok := execArgs(args)
	if !ok {
		fs.Usage()
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("exec", args)
	}
	name, code := a.labName(lab, "")
	if name == "" {
		return code
	}
	eng := a.engine(nil)
	machineNS, err := eng.LabNamespace(name, ns)
	if errors.Is(err, engine.ErrNoNamespace) || errors.Is(err, engine.ErrNotRunning) {
		fmt.Fprintf(a.stderr, "netlab: exec: %v\n", err)
		return exitUsage
	} else if err != nil {
		return a.fail("exec "+name, err)
	}
	// The namespace's view: its network, /sys and /etc/netns as `ip netns
	// exec` gives them, the lab's hosts file, the namespace's files and
	// private directories.
	err = view.Exec(view.Spec{NetNS: machineNS, Root: eng.ViewDir(name, machineNS), Hosts: eng.HostsFile(name)}, cmd)
	return a.fail("exec "+cmd[0], err) // only reached when it failed
}

// execArgs splits the arguments of netlab exec: LAB NS [--] CMD [ARGS...].
// ok is false when a part is missing.
func execArgs(args []string) (lab, ns string, cmd []string, ok bool) {
	if len(args) < 3 {
		return "", "", nil, false
	}
	lab, ns, cmd = args[0], args[1], args[2:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return lab, ns, cmd, len(cmd) > 0
}
