package main

import "fmt"

// validate: netlab validate FILE... Checks every file, prints every error.
func (a *app) validate(args []string) int {
	fs := a.flags("validate", "FILE...")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	for _, path := range pos {
		lab, c := a.loadLab(path, "")
		if lab == nil {
			code = c
			continue
		}
		fmt.Fprintf(a.stdout, "%s: lab %s is valid (%d namespaces, %d bridges, %d links)\n",
			path, lab.Name, len(lab.Namespaces), len(lab.Bridges), len(lab.Links))
	}
	return code
}
