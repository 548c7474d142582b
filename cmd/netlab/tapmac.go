package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/netlab-dev/netlab/internal/tap"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// tapMAC: netlab tap-mac IFACE MAC changes a TAP's MAC as its unprivileged
// owner, in the namespace netlab-tap-mac runs in (ip netns exec puts it
// there), with no capability at all.
func (a *app) tapMAC(args []string) int {
	if wantsHelp(args) || len(args) != 2 {
		fmt.Fprintln(a.stderr, "Usage: netlab tap-mac IFACE MAC   (as the TAP's owner; no capability needed)")
		if wantsHelp(args) {
			return exitOK
		}
		return exitUsage
	}
	mac, err := net.ParseMAC(args[1])
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: tap-mac: %v\n", err)
		return exitUsage
	}
	if err := tap.SetMAC(args[0], mac); err != nil {
		fmt.Fprintf(a.stderr, "netlab: tap-mac: %v\n", err)
		var open *tundev.OpenError
		if errors.As(err, &open) && (errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)) {
			if acc := tundev.CheckAccess(); !acc.Opens {
				fmt.Fprintf(a.stderr, "netlab: tap-mac: %s\nnetlab: fix: %s\n", acc.Why(), acc.Fix())
			}
		}
		return exitRuntime
	}
	fmt.Fprintf(a.stdout, "%s: MAC set to %s\n", args[0], mac)
	return exitOK
}
