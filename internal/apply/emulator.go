package apply

import (
	"github.com/netlab-dev/netlab/internal/emulator"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/topology"
)

// The userspace link emulator: started supervised on a link's two TAPs,
// given a new model in place.
var emulatorHandlers = map[plan.Op]handler{
	plan.OpStartEmulator: on(func(s *Session, a plan.StartEmulator) error {
		return s.procs.StartEmulator(a.NS, a.Link, a.Spec, modelFile(a.A, a.B, a.Traces))
	}),
	plan.OpSetEmulator: on(func(s *Session, a plan.SetEmulator) error {
		return s.procs.Reload(a.NS, a.Link, modelFile(a.A, a.B, a.Traces))
	}),
}

// modelFile is what the emulator is given: each direction's impairment,
// and the entries of the traces they replay (the process reads no file of
// the user's).
func modelFile(a, b topology.Impair, traces []*topology.Trace) *emulator.ModelFile {
	m := &emulator.ModelFile{A: a, B: b}
	for _, t := range traces {
		if m.Traces == nil {
			m.Traces = map[string][]uint32{}
		}
		m.Traces[t.Sum] = t.MS
	}
	return m
}
