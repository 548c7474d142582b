package main

import (
	"fmt"
	"io"
	"os"

	"github.com/netlab-dev/netlab/internal/privilege"
)

// shedPrivileges is the first thing main does, before anything reads the
// environment or the machine: a netlab the kernel elevated at exec for a
// user other than root (file capabilities from setcap, a set-id bit) gives
// that up and goes on as the user's own netlab, whose labs live in their
// sandbox (see package privilege). It says so on stderr, once, for the
// verbs where it matters: those that act on labs or sandboxes. An error
// means the privileges may not all be gone: main stops.
func shedPrivileges(args []string, stderr io.Writer) error {
	e, err := privilege.Shed()
	if err != nil {
		return err
	}
	if e != nil && noticeWanted(args) {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		fmt.Fprintf(stderr, "netlab: %s\n", e.Notice(exe))
	}
	return nil
}

// noticeWanted says whether the command line is one where shed privileges
// change what the user gets: a lab verb or sandbox, not version,
// completion, doctor (which says it in its findings) or a verb's usage.
func noticeWanted(args []string) bool {
	_, args, err := sandboxFlag(args)
	if err != nil || len(args) == 0 {
		return false
	}
	for _, a := range args[1:] {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return false // a verb's usage
		}
	}
	return labVerbs[args[0]] || args[0] == "sandbox"
}
