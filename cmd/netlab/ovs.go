package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// ovsTools are the Open vSwitch programs `netlab ovs` runs: the ones that
// talk to a running instance (its database, its bridges, its daemons).
var ovsTools = map[string]bool{
	"ovs-vsctl": true, "ovs-ofctl": true, "ovs-appctl": true, "ovs-dpctl": true, "ovsdb-client": true,
}

// ovsVerb: netlab ovs LAB -- OVS-TOOL [ARGS...] runs one of Open vSwitch's
// own tools against the Open vSwitch the lab's bridges live in, the system's
// or netlab's private one, on the machine or in the lab's sandbox: with
// OVS_RUNDIR (and OVS_DBDIR, OVS_LOGDIR) pointing at it, so
// `ovs-ofctl dump-flows br0`, `ovs-appctl ofproto/trace br0 ...` and
// `ovs-vsctl show` work as the Open vSwitch documentation writes them. The
// tool replaces netlab: its output, exit code and signals are its own.
func (a *app) ovsVerb(args []string) int {
	fs := a.flags("ovs", "LAB -- ovs-vsctl|ovs-ofctl|ovs-appctl|ovs-dpctl|ovsdb-client [ARGS...]")
	if wantsHelp(args) {
		fs.Usage()
		return exitOK
	}
	lab, cmd, ok := ovsArgs(args)
	if !ok {
		fs.Usage()
		return exitUsage
	}
	if !ovsTools[cmd[0]] {
		fmt.Fprintf(a.stderr, "netlab: ovs: %q is not an Open vSwitch tool netlab runs (%s); for other commands use netlab exec\n", cmd[0], strings.Join(sortedKeys(ovsTools), ", "))
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("ovs", args)
	}
	name, code := a.labName(lab, "")
	if name == "" {
		return code
	}
	env, err := a.engine(nil).OVSEnv(name)
	if err != nil {
		return a.fail("ovs "+name, err)
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return a.fail("ovs", err)
	}
	err = syscall.Exec(path, cmd, append(os.Environ(), env...))
	return a.fail("ovs "+path, err) // only reached when exec itself failed
}

// ovsArgs splits the arguments of netlab ovs: LAB [--] CMD [ARGS...].
func ovsArgs(args []string) (lab string, cmd []string, ok bool) {
	if len(args) < 2 {
		return "", nil, false
	}
	lab, cmd = args[0], args[1:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return lab, cmd, lab != "" && len(cmd) > 0
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
