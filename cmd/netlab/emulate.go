package main

import "github.com/netlab-dev/netlab/internal/emulator"

// emulate: netlab emulate --ns NS --dev TAP --peer-ns NS --peer-dev TAP ...
// is the supervised process that carries an emulated link between its two
// TAPs, which netlab up starts. Users do not run it by hand (but can:
// `netlab emulate -h`).
func (a *app) emulate(args []string) int {
	return emulator.Main(args, a.stdout, a.stderr)
}
