package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// exec: netlab exec LAB NS -- CMD ARGS... runs a command inside one of the
// lab's namespaces, like `ip netns exec` (which it uses, so /etc/netns/<ns>
// files apply and /sys shows the namespace's devices). NS may be the name in
// the file or on the machine (with the lab's prefix). The command replaces
// netlab, so its exit code, signals and terminal are the command's own.
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
	st, err := a.engine(nil).Status(name)
	if err != nil {
		return a.fail("exec "+name, err)
	}
	machineNS := ""
	for _, n := range st.Namespaces {
		if n.Name == "host" {
			continue
		}
		if n.Name == ns || n.Name == st.Prefix+ns {
			machineNS = n.Name
		}
	}
	if machineNS == "" || !namespace.Exists(machineNS) {
		fmt.Fprintf(a.stderr, "netlab: exec: lab %s has no namespace %s (netlab status %s lists them)\n", name, ns, name)
		return exitUsage
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return a.fail("exec", err)
	}
	argv := append([]string{"ip", "netns", "exec", machineNS}, cmd...)
	err = syscall.Exec(ip, argv, os.Environ())
	return a.fail("exec "+ip, err) // only reached when exec itself failed
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
