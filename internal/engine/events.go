package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/apply"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Events change a running lab at run time and are kept as its desired
// state (state/events.go): a pulled cable (SetLinkState) and a partition
// (Partition, Heal). Each is journaled before it is applied, so up keeps
// it, status shows it as intent rather than drift, a crash leaves nothing
// down cannot find, and down removes what it made. Only the event's own
// actions run: other drift of the lab is up's business. These calls are
// what a program driving a lab over time (a timeline of flaps and
// partitions) makes too: each is one locked, journaled change.

// ErrNoCable is wrapped by errors about an interface of the lab whose
// cable netlab cannot pull: a TUN/TAP (its carrier is its program's) or a
// bridge's own interface.
var ErrNoCable = errors.New("no cable to pull")

// ErrNoNamespace is wrapped by errors about a namespace the lab does not
// have.
var ErrNoNamespace = errors.New("no such namespace in the lab")

// ErrNotRunning is wrapped by errors about a lab that has no journal: the
// user named a lab that is not up (a usage error, not a failure).
var ErrNotRunning = errors.New("not running")

// notRunning is the error about a lab with no journal, for every verb.
func notRunning(lab string) error {
	return fmt.Errorf("lab %s is %w (netlab status lists the labs)", lab, ErrNotRunning)
}

// ErrBadPartition is wrapped by errors about a partition that cannot be
// made as asked: an empty group, a namespace in both, the host, a bad name.
var ErrBadPartition = errors.New("bad partition")

// ErrPartitionExists is wrapped when a partition of the name asked for
// already cuts other traffic: heal it first.
var ErrPartitionExists = errors.New("partition exists")

// LinkResult is what SetLinkState did.
type LinkResult struct {
	// Interface is the interface whose cable it is, "ns/link" as on the
	// machine.
	Interface string
	// Device is the device held down for it on this machine ("ns/link");
	// "" when nothing of the link is on this machine (another machine's
	// part of the lab holds it).
	Device string
	// Plan is the actions applied; empty when the link already was so.
	Plan plan.Plan
}

// SetLinkState pulls (down) or plugs back (!down) the cable of the
// interface ns/link of a running lab (named as on the machine, or as in
// the file): the interface keeps its settings and sees no carrier, as on a
// real pulled cable, because netlab sets its veth peer down — or, for a
// link to another machine, this machine's tunnel device. Plugging it back
// gives the device its addresses and routes again (the kernel flushed
// them). A pulled cable stays pulled across up until plugged back or down.
//
// Equivalent to: `ip link set PEER down` (up, with `ip addr replace` and
// `ip route replace` of what the kernel flushed).
func (e *Engine) SetLinkState(lab, ns, link string, down bool) (*LinkResult, error) {
	res := &LinkResult{}
	p, err := e.event(lab, func(j *state.Journal, full, part *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		n, l, err := resolveCable(full, j.Prefix, ns, link)
		if err != nil {
			return nil, err
		}
		res.Interface = state.CableKey(n, l)
		if down {
			j.PullCable(n, l)
		} else {
			j.PlugCable(n, l)
		}
		c, here := plan.CableOf(part, n, l)
		if !here {
			return nil, nil
		}
		res.Device = state.CableKey(c.NS, c.Link)
		return func(p plan.Plan) plan.Plan { return plan.LinkEvents(p, part, c) }, nil
	})
	res.Plan = p
	if err != nil {
		return res, fmt.Errorf("lab %s: link %s/%s: %w", lab, ns, link, err)
	}
	return res, nil
}

// resolveCable names an interface whose cable can be pulled as on the
// machine, from its name there or in the file (without the lab's prefix),
// in the whole lab (a multi-machine lab's other parts included).
func resolveCable(full *topology.Lab, prefix, ns, link string) (string, string, error) {
	nsNames := []string{ns}
	if ns != topology.Host {
		nsNames = append(nsNames, prefix+ns)
	}
	for _, n := range nsNames {
		for _, l := range []string{link, prefix + link} {
			if _, ok := plan.CableOf(full, n, l); ok {
				return n, l, nil
			}
		}
	}
	for _, n := range nsNames {
		if nsp := full.Namespace(n); nsp != nil {
			for _, t := range nsp.TUNs {
				if t.Name == link {
					return "", "", fmt.Errorf("%s is a TUN device, whose carrier is its program's: %w", link, ErrNoCable)
				}
			}
			for _, t := range nsp.TAPs {
				if t.Name == link {
					return "", "", fmt.Errorf("%s is a TAP device, whose carrier is its program's: %w", link, ErrNoCable)
				}
			}
		}
		if n == topology.Host {
			for _, l := range []string{link, prefix + link} {
				if full.Bridge(l) != nil {
					return "", "", fmt.Errorf("%s is a bridge's own interface (pull the cable of a port instead): %w", l, ErrNoCable)
				}
			}
		}
	}
	return "", "", fmt.Errorf("%s/%s: %w", ns, link, ErrNoInterface)
}

// LinksDown lists the interfaces of a running lab whose cable is pulled,
// "ns/link" as on the machine.
func (e *Engine) LinksDown(lab string) ([]string, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	return slices.Clone(j.LinksDown), nil
}

// PartitionResult is what Partition did.
type PartitionResult struct {
	// Partition is the partition in force, its namespaces as on the
	// machine and its name given or chosen (p1, p2, ...).
	Partition state.Partition
	// Plan is the actions applied; empty when it was in force already.
	Plan plan.Plan
}

// Partition cuts the traffic between two groups of a running lab's
// namespaces (named as on the machine, or as in the file): every packet
// from a namespace of p.A to one of p.B is dropped where it would be
// delivered, and unless p.OneWay every packet back too, in IPv4 and IPv6,
// whatever the protocol and the path (one bridge, a router in neither
// group, a tunnel to another machine: each machine cuts what reaches its
// own namespaces). Traffic inside a group, and with namespaces in neither,
// is untouched, and nothing is ever rejected or reset: established
// connections pick up again when healed. p.Name "" takes the first free of
// p1, p2, ...; a partition cutting the same traffic is that one again (up
// to date). Partitions add up: several can be in force at once.
//
// Equivalent to: `nft -f -` in each namespace of the groups, with the
// text of its set-partition action.
func (e *Engine) Partition(lab string, p state.Partition) (*PartitionResult, error) {
	res := &PartitionResult{}
	applied, err := e.event(lab, func(j *state.Journal, full, part *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		want, err := resolvePartition(full, j, p)
		if err != nil {
			return nil, err
		}
		res.Partition = want
		j.SetPartition(want)
		return plan.PartitionEvents, nil
	})
	res.Plan = applied
	if err != nil {
		return res, fmt.Errorf("lab %s: partition: %w", lab, err)
	}
	return res, nil
}

// resolvePartition checks p against the lab and the partitions in force,
// names its namespaces as on the machine and gives it its name.
func resolvePartition(full *topology.Lab, j *state.Journal, p state.Partition) (state.Partition, error) {
	out := state.Partition{Name: p.Name, OneWay: p.OneWay}
	if p.Name != "" && !topology.ValidPartitionName(p.Name) {
		return out, fmt.Errorf("name %q: use 1 to 32 of a-z, 0-9 and -, starting with a letter or digit: %w", p.Name, ErrBadPartition)
	}
	seen := map[string]string{}
	for _, side := range []struct {
		names []string
		to    *[]string
		which string
	}{{p.A, &out.A, "first"}, {p.B, &out.B, "second"}} {
		if len(side.names) == 0 {
			return out, fmt.Errorf("the %s group is empty: %w", side.which, ErrBadPartition)
		}
		for _, name := range side.names {
			n, err := resolveNS(full, j.Prefix, name)
			if err != nil {
				return out, err
			}
			if other, ok := seen[n]; ok {
				if other == side.which {
					continue // named twice in one group
				}
				return out, fmt.Errorf("namespace %s is in both groups: %w", n, ErrBadPartition)
			}
			seen[n] = side.which
			*side.to = append(*side.to, n)
		}
	}
	for _, q := range j.Partitions {
		switch {
		case q.Name == out.Name && q.Same(out):
			return q, nil
		case q.Name == out.Name:
			return out, fmt.Errorf("partition %s exists, cutting %s (heal it first): %w", q.Name, PartitionText(q), ErrPartitionExists)
		case out.Name == "" && q.Same(out):
			return q, nil
		}
	}
	for i := 1; out.Name == ""; i++ {
		if _, taken := j.Partition(fmt.Sprintf("p%d", i)); !taken {
			out.Name = fmt.Sprintf("p%d", i)
		}
	}
	return out, nil
}

// resolveNS names a namespace of the lab as on the machine, from its name
// there or in the file. The host is in no group: it is shared with the
// machine and with every other lab.
func resolveNS(full *topology.Lab, prefix, name string) (string, error) {
	if name == topology.Host {
		return "", fmt.Errorf("the host is shared with the machine and other labs, and is in no partition: %w", ErrBadPartition)
	}
	for _, n := range []string{name, prefix + name} {
		if full.Namespace(n) != nil {
			return n, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, ErrNoNamespace)
}

// PartitionText says what a partition cuts: "a,b / c" (both ways) or
// "a,b -> c" (one way: a's and b's packets to c).
func PartitionText(p state.Partition) string {
	sep := " / "
	if p.OneWay {
		sep = " -> "
	}
	return strings.Join(p.A, ",") + sep + strings.Join(p.B, ",")
}

// HealResult is what Heal did.
type HealResult struct {
	// Healed are the partitions healed; Missing the names asked for that
	// were in force nowhere (nothing to do for them).
	Healed  []state.Partition
	Missing []string
	// Plan is the actions applied.
	Plan plan.Plan
}

// Heal lifts partitions of a running lab: those named, or every one when
// none is. The tables go (or keep the rules of the partitions still in
// force); nothing is reset, so connections the partition stalled go on.
//
// Equivalent to: `nft -f -` in each namespace, with the text of its
// set-partition or del-partition action.
func (e *Engine) Heal(lab string, names ...string) (*HealResult, error) {
	res := &HealResult{}
	applied, err := e.event(lab, func(j *state.Journal, full, part *topology.Lab) (func(plan.Plan) plan.Plan, error) {
		if len(names) == 0 {
			res.Healed = slices.Clone(j.Partitions)
			j.Partitions = nil
			return plan.PartitionEvents, nil
		}
		for _, name := range names {
			q, ok := j.Partition(name)
			if !ok {
				res.Missing = append(res.Missing, name)
				continue
			}
			res.Healed = append(res.Healed, q)
			j.RemovePartition(name)
		}
		return plan.PartitionEvents, nil
	})
	res.Plan = applied
	if err != nil {
		return res, fmt.Errorf("lab %s: heal: %w", lab, err)
	}
	return res, nil
}

// Partitions lists the partitions in force in a running lab.
func (e *Engine) Partitions(lab string) ([]state.Partition, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	return slices.Clone(j.Partitions), nil
}

// event runs one event on a running lab, under its lock: change edits the
// journal (given the whole lab and this machine's part of it) and returns
// what of the plan the event runs (nil: nothing here). The journal is
// saved with the intents of those actions before any is applied.
func (e *Engine) event(lab string, change func(j *state.Journal, full, part *topology.Lab) (func(plan.Plan) plan.Plan, error)) (plan.Plan, error) {
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !e.store.Exists(lab) {
		return nil, notRunning(lab)
	}
	full, err := e.LabFile(lab)
	if err != nil {
		return nil, err
	}
	part, err := e.LabPart(lab)
	if err != nil {
		return nil, err
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	filter, err := change(j, full, part)
	if err != nil {
		return nil, err
	}
	if filter == nil {
		return nil, e.store.Save(j)
	}
	oc, err := e.connectOVS(false)
	if err != nil && hasOVS(part) {
		return nil, err
	}
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	snap, err := s.reader().Lab(part, j)
	if err != nil {
		return nil, err
	}
	whole, err := e.makePlan(part, snap, j, j.Force)
	if err != nil {
		return nil, err
	}
	p := filter(whole)
	apply.RecordIntents(p, j)
	if err := e.store.Save(j); err != nil {
		return nil, err
	}
	if done, err := s.applier(j).Run(p, s.options(nil)); err != nil {
		return p[:done], err
	}
	return p, nil
}

// eventStatus is what status shows of the lab's events: its pulled cables
// (with the device each holds down here, recorded in held by device) and
// its partitions with what their rules dropped here. Without the lab's
// file (part nil) the devices are unknown.
func eventStatus(part *topology.Lab, snap *state.Snapshot, j *state.Journal, held map[string][]string) ([]CableStatus, []PartitionStatus) {
	var cables []CableStatus
	for _, k := range j.LinksDown {
		cs := CableStatus{Interface: k}
		if part != nil {
			ns, link, _ := strings.Cut(k, "/")
			if c, ok := plan.CableOf(part, ns, link); ok {
				cs.Device = state.CableKey(c.NS, c.Link)
				held[cs.Device] = append(held[cs.Device], k)
			}
		}
		cables = append(cables, cs)
	}
	var parts []PartitionStatus
	for _, p := range j.Partitions {
		ps := PartitionStatus{Name: p.Name, A: p.A, B: p.B, OneWay: p.OneWay}
		if part != nil {
			for ns, from := range plan.PartitionDrops(part, []state.Partition{p}) {
				o := snap.Namespaces[ns]
				if o == nil || o.Partition == nil {
					continue
				}
				for _, d := range o.Partition.Drop {
					if slices.Contains(from, d.From) {
						ps.Dropped += d.Packets
					}
				}
			}
		}
		parts = append(parts, ps)
	}
	return cables, parts
}
