package topology

// SandboxErrors lists what of the lab cannot follow it from the machine
// into a sandbox, whose host is a network namespace of its own: an external
// port names one of the machine's own interfaces (a spare NIC, a VM's tap),
// which a sandbox neither has nor may take from the machine. up and
// validate refuse such a file for a sandbox, before anything is made.
// (Inside a sandbox, an external port names one of the sandbox's own
// interfaces, which works as on a machine.)
func SandboxErrors(lab *Lab) ErrorList {
	var errs ErrorList
	for _, b := range lab.Bridges {
		for _, x := range b.External {
			errs = append(errs, &Error{File: lab.File, Pos: x.Pos, Path: x.Path,
				Msg: "external interface " + x.Name + " is the machine's own: a lab in a sandbox has a network of its own and cannot attach it (bring this lab up as root, without --sandbox)"})
		}
	}
	return errs
}
