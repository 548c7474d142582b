package emulator

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/netlab-dev/netlab/internal/atomicfile"
	"github.com/netlab-dev/netlab/internal/linkmodel"
	"github.com/netlab-dev/netlab/topology"
)

// ModelFile is what netlab asks of a link, as it writes it for `netlab
// emulate --model-file`: the impairment of each direction, named by the end
// that sends (A's is what A sends toward B), with the entries of the traces
// they replay, and a generation that the state file echoes once applied.
type ModelFile struct {
	Generation uint64              `json:"generation"`
	A          topology.Impair     `json:"a"`
	B          topology.Impair     `json:"b"`
	Traces     map[string][]uint32 `json:"traces,omitempty"` // by the trace's hash
	// Seed makes the model's random choices reproducible; 0: a new one at
	// every start.
	Seed uint64 `json:"seed,omitempty"`
}

// State is what a running emulator writes to its state file: the model in
// force, its counters, each end's carrier. Written when it starts, after
// each reload, every StateInterval, and when it stops.
type State struct {
	Pid int `json:"pid"`
	// Generation, A and B are the model file's in force.
	Generation uint64          `json:"generation"`
	A          topology.Impair `json:"a"`
	B          topology.Impair `json:"b"`
	// AtoB and BtoA count what each direction's model did.
	AtoB linkmodel.Stats `json:"a_to_b"`
	BtoA linkmodel.Stats `json:"b_to_a"`
	// WriteErrors are frames the far TAP would not take (it was down).
	WriteErrors uint64 `json:"write_errors,omitempty"`
	// CarrierA and CarrierB are the carriers the emulator gives each TAP:
	// the other end's administrative state.
	CarrierA bool `json:"carrier_a"`
	CarrierB bool `json:"carrier_b"`
	// Error is why the last model file could not be applied ("" when it
	// was): the model before it stays in force.
	Error   string    `json:"error,omitempty"`
	Updated time.Time `json:"updated"`
	// KeptAtoB and KeptBtoA are the frames each direction held (queued or
	// on its delay line) when the last model took: kept, not dropped.
	KeptAtoB int `json:"kept_a_to_b,omitempty"`
	KeptBtoA int `json:"kept_b_to_a,omitempty"`
	// TraceAtoB and TraceBtoA are when the trace each direction replays
	// began (its time 0); zero without one.
	TraceAtoB time.Time `json:"trace_a_to_b,omitzero"`
	TraceBtoA time.Time `json:"trace_b_to_a,omitzero"`
	// LateAtoB and LateBtoA say how late each direction's frames left
	// (written, against when the model let them go) since the model in
	// force took: the emulator's own precision, on this machine, under its
	// load.
	LateAtoB Lateness `json:"late_a_to_b"`
	LateBtoA Lateness `json:"late_b_to_a"`
	// Priority is the scheduling priority the process got.
	Priority Priority `json:"priority,omitempty"`
}

// StateInterval is how often a running emulator rewrites its state file.
const StateInterval = time.Second

// ReadModel reads a model file.
func ReadModel(path string) (*ModelFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m ModelFile
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model file %s: %w", path, err)
	}
	return &m, nil
}

// WriteModel replaces the model file atomically.
func WriteModel(path string, m *ModelFile) error { return writeJSON(path, m) }

// ReadState reads an emulator's state file.
func ReadState(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("emulator state %s: %w", path, err)
	}
	return s, nil
}

// writeJSON replaces path atomically: a reader never sees half a file.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// Params is the model of one direction for an impairment, with the entries
// of the trace it names (from traces, by hash).
func Params(im topology.Impair, traces map[string][]uint32) (linkmodel.Params, error) {
	p := linkmodel.Params{
		Delay: im.Delay, Jitter: im.Jitter, Distribution: linkmodel.Distribution(im.Distribution),
		Rate: im.Rate, Limit: im.Limit, LimitBytes: im.LimitBytes,
		Loss: im.Loss, Duplicate: im.Duplicate, Corrupt: im.Corrupt, Reorder: im.Reorder,
		GE: linkmodel.GilbertElliott{P: im.GE.P, R: im.GE.R, LossBad: im.GE.LossBad, LossGood: im.GE.LossGood},
	}
	if !im.Trace.IsZero() {
		ms, ok := traces[im.Trace.Sum]
		if !ok {
			return p, fmt.Errorf("trace %s (%s) is not in the model file", im.Trace.Name, im.Trace.Sum)
		}
		p.Trace = &linkmodel.Trace{Name: im.Trace.Name, Sum: im.Trace.Sum, MS: ms}
	}
	return p, p.Check()
}
