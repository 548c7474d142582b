package main

import "github.com/netlab-dev/netlab/internal/reflector"

// reflect: netlab reflect --ns NS --dev DEV ... is the supervised data-plane
// process netlab up starts for a reflector or a TUN<->UDP bridge. Users do
// not run it by hand (but can: `netlab reflect -h`).
func (a *app) reflect(args []string) int {
	return reflector.Main(args, a.stdout, a.stderr)
}
