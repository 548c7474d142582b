// Package plan turns a desired lab and an observed snapshot into the ordered
// list of actions that makes the machine match the file. It is pure: it never
// touches the machine, so every plan can be printed (`netlab plan`), golden
// tested and checked for emptiness after an apply.
package plan

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Op is the kind of an action: each has one step type (steps_*.go), one
// entry in kinds (where it sorts in a down), one handler that carries it
// out (internal/apply) and one step of the tests' simulator; tests fail on
// a kind that lacks one.
type Op string

// Step is what one action does, with what it needs and nothing else: one
// type per kind. The set is closed: only this package makes steps.
type Step interface {
	// Op is the step's kind.
	Op() Op
	// Command is the command line the step stands for, so a plan reads like
	// the shell script a user would otherwise write; lab is the lab the
	// objects belong to (markers, external ids, table names).
	Command(lab string) string
	// Scope is what the step works on: a namespace ("ns:NAME") or a bridge
	// ("bridge:NAME"). Steps of one kind on different scopes are
	// independent and may run at once.
	Scope() string
	sealed()
}

// Action is one step of a plan, with the lab it is taken for.
type Action struct {
	Step
	Lab string
}

// String renders the action as the command line it stands for.
func (a Action) String() string { return a.Command(a.Lab) }

// MarshalJSON writes the action as one object: "op", then the step's
// fields (`netlab plan --json`, documented in docs/json.md).
func (a Action) MarshalJSON() ([]byte, error) {
	body, err := json.Marshal(a.Step)
	if err != nil {
		return nil, err
	}
	op, err := json.Marshal(a.Op())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"op":`)
	b.Write(op)
	if rest := bytes.TrimPrefix(body, []byte("{")); len(rest) > 1 {
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}

// Removal is a step that removes something; Removed says what, as down
// reports it ("" when the step reports for itself).
type Removal interface {
	Removed(lab string) string
}

// RemovedText says what an action of a down plan removed.
func (a Action) RemovedText() string {
	if r, ok := a.Step.(Removal); ok {
		return r.Removed(a.Lab)
	}
	return a.String()
}

// Plan is an ordered list of actions. An empty plan means the lab is up to date.
type Plan []Action

// String renders one command per line.
func (p Plan) String() string {
	var b strings.Builder
	for _, a := range p {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// kind is what the planner knows of an action kind besides its step type.
type kind struct {
	// down is where the kind sorts in a down plan, 1 first: what uses a
	// thing goes before the thing. 0: never in a down plan.
	down int
	// impairment: the kind changes an interface's impairments, which
	// `netlab impair` runs alone.
	impairment bool
	// event: the kind carries out an event of that sort (steps_events.go),
	// which its verb runs alone.
	event event
}

// kinds is the table of action kinds, one part per driver's file
// (steps_*.go): a feature adds its kinds' rows beside its step types.
var kinds = mergeKinds(kernelKinds, ovsKinds, nftKinds, processKinds, serviceKinds, eventKinds, vlanKinds, timelineKinds)

func mergeKinds(parts ...map[Op]kind) map[Op]kind {
	out := map[Op]kind{}
	for _, part := range parts {
		for op, k := range part {
			if _, dup := out[op]; dup {
				panic("plan: two rows of kind " + string(op))
			}
			out[op] = k
		}
	}
	return out
}

// Ops lists every action kind.
func Ops() []Op {
	out := make([]Op, 0, len(kinds))
	for op := range kinds {
		out = append(out, op)
	}
	return out
}

// sortDown orders a down plan by kind, keeping the order of actions of one
// kind (stable).
func sortDown(p Plan) {
	slices.SortStableFunc(p, func(a, b Action) int { return kinds[a.Op()].down - kinds[b.Op()].down })
}

// Impairments is the part of a plan that changes the impairments of link:
// what `netlab impair` runs, and nothing else the plan would repair. An
// OVS port's type follows its impairment (see impairedPort), so that
// port's type change runs too.
func Impairments(p Plan, link string) Plan {
	var out Plan
	for _, a := range p {
		if kinds[a.Op()].impairment {
			out = append(out, a)
		} else if t, ok := a.Step.(SetPortType); ok && t.has(link) {
			out = append(out, a)
		}
	}
	return out
}

// ipn renders "ip" or "ip -n NS".
func ipn(ns string) string {
	if ns == topology.Host || ns == "" {
		return "ip"
	}
	return "ip -n " + ns
}

// nsFlag renders "" or " -n NS", for commands with iproute2's -n.
func nsFlag(ns string) string {
	if ns == topology.Host || ns == "" {
		return ""
	}
	return " -n " + ns
}

// inNS prefixes a command that has no namespace flag with ip netns exec.
func inNS(ns, cmd string) string {
	if ns == topology.Host || ns == "" {
		return cmd
	}
	return "ip netns exec " + ns + " " + cmd
}

func inScope(ns string) string       { return "ns:" + ns }
func bridgeScope(name string) string { return "bridge:" + name }

// routeArgs is the route as `ip route` takes it; a default route of IPv6
// says -6, which keeps the text a valid command (ip route del default -6).
func routeArgs(r *state.Route) string {
	s := r.String()
	if r.To.Bits() == 0 && r.To.Addr().Is6() {
		s = strings.Replace(s, "default", "default -6", 1)
	}
	return s
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
