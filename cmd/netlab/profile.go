package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts what the environment asks to record of this run,
// for measuring netlab (bench/RESULTS.md, docs/design.md "Up: where the
// time goes"), never read otherwise:
//   - NETLAB_CPUPROFILE=FILE: a CPU profile (go tool pprof FILE);
//   - NETLAB_TRACE=FILE: an execution trace, where the wall time goes,
//     blocked and in system calls included (go tool trace FILE).
//
// The returned function writes them out; call it before exiting.
func startProfiles(stderr io.Writer) (stop func()) {
	var stops []func()
	if path := os.Getenv("NETLAB_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netlab: NETLAB_CPUPROFILE: %v\n", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv("NETLAB_TRACE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "netlab: NETLAB_TRACE: %v\n", err)
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
