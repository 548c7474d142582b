package observe

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
	"golang.org/x/sys/unix"
)

// checkLimits refuses, before anything is made, a lab too big for this
// machine: more network namespaces than the user namespace may have
// (user.max_net_namespaces), or a process that may open too few files to
// work at all. up would otherwise fail after making thousands of objects,
// and a second up the same way.
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

// checkFileLimit refuses to work when this process may open too few files,
// after raising the soft limit to the hard one. What netlab holds open does
// not grow with the lab: at most kernel.OpenLimit() namespaces have their
// files open at once (kernel.Handles closes the least recently opened idle
// ones past it), so a lab of any size needs the same few hundred.
func checkFileLimit(lab *topology.Lab, n int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: the kernel says so when it comes to it
	}
	need := uint64(minFiles())
	if need > lim.Cur && need <= lim.Max {
		cur := lim.Cur
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			lim.Cur = cur
		}
	}
	return fileLimitError(lab, n, need, lim.Cur, lim.Max)
}

// minFiles is what netlab needs open at the least: its reserve, and the
// fewest namespaces it works with at once.
func minFiles() int { return kernel.FilesReserve + kernel.FilesPerNamespace*kernel.MinOpenNamespaces }

// fileLimitError is checkFileLimit's verdict for a soft limit cur and a
// hard one max.
func fileLimitError(lab *topology.Lab, n int, need, cur, max uint64) error {
	if need <= cur {
		return nil
	}
	return topology.ErrorList{&topology.Error{File: lab.File, Pos: lab.Pos, Path: "namespaces", Msg: fmt.Sprintf(
		"%d namespaces: netlab needs about %d open files whatever the lab's size (it keeps at most %d namespaces open at once), and this process may open %d (ulimit -n; hard limit %d): raise the limit (ulimit -Hn, or LimitNOFILE= for a service)",
		n, need, kernel.MaxOpenNamespaces, cur, max)}}
}
