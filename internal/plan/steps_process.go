package plan

import (
	"fmt"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The kinds of processes and qdiscs: the lab's supervised processes, the
// processes in its namespaces, and an interface's impairment qdiscs.
const (
	OpStartProcess    Op = "start-process"
	OpStopProcess     Op = "stop-process"
	OpStopNSProcesses Op = "stop-ns-processes" // every process in the namespaces (down)
	OpSetQdisc        Op = "set-qdisc"
	OpDelQdisc        Op = "del-qdisc"
)

// processKinds are the rows of processes and qdiscs in the table of kinds.
var processKinds = map[Op]kind{
	OpStartProcess:    {},
	OpStopProcess:     {down: 1},
	OpStopNSProcesses: {down: 5},
	OpSetQdisc:        {impairment: true},
	OpDelQdisc:        {impairment: true},
}

// StartProcess starts a supervised `netlab reflect` on a device; Spec is
// what it does, canonically.
type StartProcess struct {
	NS   string `json:"ns,omitempty"`
	Link string `json:"link,omitempty"`
	Spec string `json:"spec,omitempty"`
}

func (StartProcess) Op() Op          { return OpStartProcess }
func (s StartProcess) Scope() string { return inScope(s.NS) }
func (StartProcess) sealed()         {}
func (s StartProcess) Command(lab string) string {
	return fmt.Sprintf("netlab reflect --ns %s --dev %s %s &   # supervised: pidfile and log under /run/netlab/labs/%s", s.NS, s.Link, s.Spec, lab)
}

// StopProcess ends a supervised process of the lab, by its PID: a
// reflector or UDP bridge on a TUN, or the emulator of a link (Program
// state.ProgramEmulate, under the link's first end).
type StopProcess struct {
	NS      string `json:"ns,omitempty"`
	Link    string `json:"link,omitempty"`
	Spec    string `json:"spec,omitempty"`
	Program string `json:"program,omitempty"`
}

func (StopProcess) Op() Op          { return OpStopProcess }
func (s StopProcess) Scope() string { return inScope(s.NS) }
func (StopProcess) sealed()         {}
func (s StopProcess) Command(lab string) string {
	return fmt.Sprintf("kill $(cat /run/netlab/labs/%s/proc/%s-%s.pid)   # after checking /proc/PID/exe and cmdline", lab, s.NS, s.Link)
}
func (s StopProcess) Removed(string) string {
	if s.Program == state.ProgramEmulate {
		return "netlab emulate on " + s.NS + "/" + s.Link
	}
	return "netlab reflect on " + s.NS + "/" + s.Link
}

// StopNSProcesses ends every process in the namespaces (SIGTERM, SIGKILL
// after a grace period): a process keeps a deleted namespace alive.
type StopNSProcesses struct {
	Namespaces []string `json:"namespaces,omitempty"`
}

func (StopNSProcesses) Op() Op        { return OpStopNSProcesses }
func (StopNSProcesses) Scope() string { return "namespaces" }
func (StopNSProcesses) sealed()       {}
func (s StopNSProcesses) Command(string) string {
	return fmt.Sprintf("for ns in %s; do kill $(ip netns pids $ns); done   # SIGKILL after 2 s", strings.Join(s.Namespaces, " "))
}

// Removed is empty: the step says for itself what it stopped, if anything.
func (StopNSProcesses) Removed(string) string { return "" }

// SetQdisc gives an interface netlab's root qdiscs for the qdisc part of
// an impairment (all but loss): a tbf for a rate, a netem for the rest (the
// tbf's child when both).
type SetQdisc struct {
	NS     string           `json:"ns,omitempty"`
	Link   string           `json:"link,omitempty"`
	Impair *topology.Impair `json:"impair,omitempty"`
}

func (SetQdisc) Op() Op          { return OpSetQdisc }
func (s SetQdisc) Scope() string { return inScope(s.NS) }
func (SetQdisc) sealed()         {}
func (s SetQdisc) Command(string) string {
	tc := "tc" + nsFlag(s.NS)
	im := *s.Impair
	var cmds []string
	if im.Rate != 0 {
		t := TBFOf(im)
		cmds = append(cmds, fmt.Sprintf("%s qdisc replace dev %s root handle %x: tbf rate %s burst %db limit %db",
			tc, s.Link, state.QdiscHandleTBF, topology.FormatRate(im.Rate), t.Burst, t.Limit))
		if needsNetem(im) {
			cmds = append(cmds, fmt.Sprintf("%s qdisc replace dev %s parent %x:1 handle %x: netem %s",
				tc, s.Link, state.QdiscHandleTBF, state.QdiscHandleNetem, netemArgs(im)))
		}
	} else {
		cmds = append(cmds, fmt.Sprintf("%s qdisc replace dev %s root handle %x: netem %s", tc, s.Link, state.QdiscHandleNetem, netemArgs(im)))
	}
	return strings.Join(cmds, " && ")
}

// DelQdisc removes netlab's root qdisc (by its handle) from an interface.
type DelQdisc struct {
	NS     string `json:"ns,omitempty"`
	Link   string `json:"link,omitempty"`
	Handle uint16 `json:"handle,omitempty"`
}

func (DelQdisc) Op() Op          { return OpDelQdisc }
func (s DelQdisc) Scope() string { return inScope(s.NS) }
func (DelQdisc) sealed()         {}
func (s DelQdisc) Command(string) string {
	return fmt.Sprintf("tc%s qdisc del dev %s root handle %x:", nsFlag(s.NS), s.Link, s.Handle)
}
