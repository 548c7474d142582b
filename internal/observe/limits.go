package observe

import (
	"fmt"

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

// checkFileLimit refuses, before anything is made, a lab too big for the
// files this process may open: up would otherwise fail with "too many open
// files" after making thousands of objects, and a second up the same way.
func checkFileLimit(lab *topology.Lab, j *state.Journal) error {
	n := len(lab.Namespaces)
	for _, name := range j.Namespaces {
		if lab.Namespace(name) == nil {
			n++
		}
	}
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
