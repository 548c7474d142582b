package main

import (
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/engine"
)

// link: netlab link LAB NS/IFACE down|up [--reset]. Pulls the cable of one
// interface of a running lab (down) or plugs it back (up, or --reset: the
// file's state, which is up). Journaled: up keeps it, status shows it,
// down cleans. Idempotent: the same state again changes nothing.
func (a *app) link(args []string) int {
	fs := a.flags("link", "LAB NS/IFACE down|up|--reset")
	reset := fs.Bool("reset", false, "plug the cable back: the file's state (up)")
	pos, code, ok := positional(fs, args, 2, 3)
	if !ok {
		return code
	}
	lab := pos[0]
	if !validLabName(lab) {
		fmt.Fprintf(a.stderr, "netlab link: %q is not a lab name ([a-z0-9-])\n", lab)
		return exitUsage
	}
	ns, iface, ok := strings.Cut(pos[1], "/")
	if !ok || ns == "" || iface == "" || strings.Contains(iface, "/") {
		fmt.Fprintf(a.stderr, "netlab link: want NS/IFACE (host/IFACE for a host-side end or bridge port), got %q\n", pos[1])
		return exitUsage
	}
	state := ""
	if len(pos) == 3 {
		state = pos[2]
	}
	switch {
	case state != "" && state != "down" && state != "up":
		fmt.Fprintf(a.stderr, "netlab link: want down or up, got %q\n", state)
		return exitUsage
	case state == "down" && *reset:
		fmt.Fprintln(a.stderr, "netlab link: --reset plugs the cable back; it does not go with down")
		return exitUsage
	case state == "" && !*reset:
		fs.Usage()
		return exitUsage
	case a.sandbox != "":
		return a.enter("link", args)
	}
	down := state == "down"
	res, err := a.engine(nil).SetLinkState(lab, ns, iface, down)
	if err != nil {
		return a.fail("link "+lab+" "+pos[1], err)
	}
	for _, act := range res.Plan {
		fmt.Fprintln(a.stdout, act)
	}
	fmt.Fprintf(a.stdout, "lab %s: %s\n", lab, linkSummary(res, down))
	return exitOK
}

// linkSummary says where the cable is now, and whether anything changed.
func linkSummary(res *engine.LinkResult, down bool) string {
	what := "plugged in"
	if down {
		what = "pulled (netlab link; up keeps it, netlab link ... up plugs it back)"
	}
	s := "the cable of " + res.Interface + " is " + what
	switch {
	case res.Device == "":
		s += "; nothing of it is on this machine: the machine holding its other end pulls it there"
	case len(res.Plan) == 0:
		s += ": up to date"
	}
	return s
}

// linkEventText is status's note of an interface's carrier and of the
// pulled cables that concern it.
func linkEventText(l engine.LinkStatus) string {
	var s string
	if l.NoCarrier {
		s += "  NO-CARRIER"
	}
	if l.CablePulled {
		s += "  cable pulled (netlab link)"
	}
	if l.HeldDownFor != "" {
		s += "  down: holds the cable of " + l.HeldDownFor + " pulled (netlab link)"
	}
	return s
}
