package plan

import (
	"fmt"

	"github.com/netlab-dev/netlab/topology"
)

// The kinds of the userspace link emulator: start one on a link's two TAPs,
// give a running one another model (in place). Both are impairments: `netlab
// impair` runs them (a dead emulator is started with the model asked). One
// is stopped like any supervised process (stop-process).
const (
	OpStartEmulator Op = "start-emulator"
	OpSetEmulator   Op = "set-emulator"
)

// emulatorKinds are the emulator's rows in the table of kinds.
var emulatorKinds = map[Op]kind{
	OpStartEmulator: {impairment: true},
	OpSetEmulator:   {impairment: true},
}

// StartEmulator starts `netlab emulate` between the TAPs NS/Link (end A)
// and PeerNS/Peer (end B), supervised like a reflector, with a model file
// of A's and B's impairments (what each end sends). Why says what needs
// the emulator.
type StartEmulator struct {
	NS     string          `json:"ns"`
	Link   string          `json:"link"`
	PeerNS string          `json:"peer_ns"`
	Peer   string          `json:"peer"`
	Spec   string          `json:"spec"`
	A      topology.Impair `json:"a"`
	B      topology.Impair `json:"b"`
	Why    string          `json:"why,omitempty"`
	// Traces are the entries of the traces A and B replay, for the model
	// file.
	Traces []*topology.Trace `json:"-"`
}

func (StartEmulator) Op() Op          { return OpStartEmulator }
func (s StartEmulator) Scope() string { return inScope(s.NS) }
func (StartEmulator) sealed()         {}
func (s StartEmulator) Command(lab string) string {
	return fmt.Sprintf("netlab emulate --ns %s --dev %s %s --model-file /run/netlab/labs/%s/proc/%s-%s.model.json &   # %s; supervised. %s",
		s.NS, s.Link, s.Spec, lab, s.NS, s.Link, directions(s.NS, s.Link, s.PeerNS, s.Peer, s.A, s.B), s.Why)
}

// SetEmulator gives a running emulator a new model: its model file is
// rewritten and it is told (SIGHUP), and applies it without dropping what
// it holds.
type SetEmulator struct {
	NS     string            `json:"ns"`
	Link   string            `json:"link"`
	PeerNS string            `json:"peer_ns"`
	Peer   string            `json:"peer"`
	A      topology.Impair   `json:"a"`
	B      topology.Impair   `json:"b"`
	Traces []*topology.Trace `json:"-"`
}

func (SetEmulator) Op() Op          { return OpSetEmulator }
func (s SetEmulator) Scope() string { return inScope(s.NS) }
func (SetEmulator) sealed()         {}
func (s SetEmulator) Command(lab string) string {
	return fmt.Sprintf("kill -HUP $(cat /run/netlab/labs/%s/proc/%s-%s.pid)   # a new model file: %s", lab, s.NS, s.Link,
		directions(s.NS, s.Link, s.PeerNS, s.Peer, s.A, s.B))
}

// directions says what each direction of an emulated link does.
func directions(ns, link, peerNS, peer string, a, b topology.Impair) string {
	return fmt.Sprintf("%s/%s -> %s/%s: %s; back: %s", ns, link, peerNS, peer, a.Shaping(), b.Shaping())
}
