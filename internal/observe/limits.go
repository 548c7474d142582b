package observe

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
	"golang.org/x/sys/unix"
)

// filesPerNamespace is how many files netlab keeps open for each of the
// lab's namespaces while it works on it (the namespace and a netlink
// socket); filesReserve is what it needs besides (Open vSwitch, nftables,
// the namespaces being read, standard streams).
const (
	filesPerNamespace = 2
	filesReserve      = 256
)

// checkLimits refuses, before anything is made, a lab too big for this
// machine: more network namespaces than the user namespace may have
// (user.max_net_namespaces), or more than the files this process may open
// allow for. up would otherwise fail after making thousands of objects
// ("too many open files"), and a second up the same way.
func checkLimits(lab *topology.Lab, j *state.Journal) error {
	n := len(lab.Namespaces)
	for _, name := range j.Namespaces {
		if lab.Namespace(name) == nil {
			n++
		}
	}
	if b, err := os.ReadFile("/proc/sys/user/max_net_namespaces"); err == nil {
		if max, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if err := checkNamespaceLimit(lab, n, max); err != nil {
				return err
			}
		}
	}
	return checkFileLimit(lab, n)
}

// checkNamespaceLimit refuses n namespaces where at most max may be made.
func checkNamespaceLimit(lab *topology.Lab, n, max int) error {
	if n <= max {
		return nil
	}
	return topology.ErrorList{&topology.Error{File: lab.File, Pos: lab.Pos, Path: "namespaces", Msg: fmt.Sprintf(
		"%d namespaces: this user namespace may have at most %d network namespaces (user.max_net_namespaces)", n, max)}}
}

// checkFileLimit refuses a lab of n namespaces too big for the files this
// process may open, after raising the soft limit to the hard one.
func checkFileLimit(lab *topology.Lab, n int) error {
	need := uint64(filesPerNamespace*n + filesReserve)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: the kernel says so when it comes to it
	}
	if need <= lim.Cur {
		return nil
	}
	if need <= lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
			return nil
		}
	}
	return topology.ErrorList{&topology.Error{File: lab.File, Pos: lab.Pos, Path: "namespaces", Msg: fmt.Sprintf(
		"%d namespaces: netlab keeps about %d files open for them, and this process may open %d (ulimit -n; hard limit %d): raise the limit (ulimit -Hn, or LimitNOFILE= for a service) or split the lab",
		n, need, lim.Cur, lim.Max)}}
}
