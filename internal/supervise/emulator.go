package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/emulator"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/state"
)

// StartEmulator starts `netlab emulate` on the link whose first end is
// ns/dev (spec names the other), with the model m, and waits until it
// carries frames (its first state file) or died.
func (s *Supervisor) StartEmulator(ns, dev, spec string, m *emulator.ModelFile) error {
	m.Generation = 1
	return s.start(state.ProgramEmulate, ns, dev, spec, func(base string) error {
		return emulator.WriteModel(base+".model.json", m)
	})
}

// ReloadTimeout bounds the wait for an emulator to take a new model.
const ReloadTimeout = 5 * time.Second

// Reload gives the running emulator of ns/dev the model m: the model file
// is rewritten with the next generation and the process told (SIGHUP, by
// PID after checking it is that emulator); Reload returns once its state
// file shows the generation in force, or says why it refused it.
func (s *Supervisor) Reload(ns, dev string, m *emulator.ModelFile) error {
	base := procBase(s.dir(), ns, dev)
	_, _, pid, ok := readPidfile(base + ".pid")
	if !ok || len(proc.Alive([]int{pid})) == 0 || programOf(pid, ns, dev) != state.ProgramEmulate {
		return fmt.Errorf("netlab emulate on %s/%s is not running", ns, dev)
	}
	cur, err := emulator.ReadState(base + ".stats.json")
	// One just started (by a run killed before it said anything) writes
	// its first state within moments: wait for it, while it lives.
	for deadline := time.Now().Add(ReloadTimeout); errors.Is(err, fs.ErrNotExist) && time.Now().Before(deadline) && len(proc.Alive([]int{pid})) > 0; {
		time.Sleep(10 * time.Millisecond)
		cur, err = emulator.ReadState(base + ".stats.json")
	}
	if err != nil {
		return fmt.Errorf("netlab emulate on %s/%s: %w", ns, dev, err)
	}
	m.Generation = cur.Generation + 1
	if err := emulator.WriteModel(base+".model.json", m); err != nil {
		return err
	}
	sent := time.Now()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("netlab emulate %d on %s/%s: signal: %w", pid, ns, dev, err)
	}
	for deadline := sent.Add(ReloadTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := emulator.ReadState(base + ".stats.json")
		if err != nil {
			continue
		}
		switch {
		case st.Generation == m.Generation:
			return nil
		case st.Error != "" && !st.Updated.Before(sent.Add(-time.Second)):
			return fmt.Errorf("netlab emulate on %s/%s refused the new model: %s", ns, dev, st.Error)
		}
		if len(proc.Alive([]int{pid})) == 0 {
			break
		}
	}
	return fmt.Errorf("netlab emulate on %s/%s did not take the new model within %s: %s", ns, dev, ReloadTimeout, tail(base+".log"))
}

// EmulatorStats reads a running emulator's state file.
func (s *Supervisor) EmulatorStats(ns, dev string) (emulator.State, error) {
	return emulator.ReadState(procBase(s.dir(), ns, dev) + ".stats.json")
}

// emulatorState is what a running emulator's state file says, with its
// far end from its spec; nil when it has said nothing yet.
func emulatorState(base, spec string) *state.EmulatorState {
	st, err := emulator.ReadState(base + ".stats.json")
	if err != nil {
		return nil
	}
	es := &state.EmulatorState{Generation: st.Generation, A: st.A, B: st.B, CarrierA: st.CarrierA, CarrierB: st.CarrierB, Error: st.Error}
	f := strings.Fields(spec)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "--peer-ns":
			es.PeerNS = f[i+1]
		case "--peer-dev":
			es.Peer = f[i+1]
		}
	}
	return es
}
