package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/state"
)

// partition: netlab partition LAB A[,B...] / C[,D...] [--oneway] [--name
// N]. Cuts the traffic between two groups of a running lab's namespaces
// (one way: only the first group's packets to the second). Journaled: up
// keeps it, status shows it, netlab heal or down lifts it. Idempotent: the
// same partition again changes nothing.
func (a *app) partition(args []string) int {
	fs := a.flags("partition", "LAB A[,B...] / C[,D...] [--oneway] [--name N]")
	oneway := fs.Bool("oneway", false, "drop only the first group's packets to the second")
	name := fs.String("name", "", "the partition's name (default: the first free of p1, p2, ...)")
	pos, code, ok := positional(fs, args, 2, -1)
	if !ok {
		return code
	}
	lab := pos[0]
	if !validLabName(lab) {
		fmt.Fprintf(a.stderr, "netlab partition: %q is not a lab name ([a-z0-9-])\n", lab)
		return exitUsage
	}
	groupA, groupB, err := partitionGroups(pos[1:])
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab partition: %v\n", err)
		fs.Usage()
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("partition", args)
	}
	res, err := a.engine(nil).Partition(lab, state.Partition{Name: *name, A: groupA, B: groupB, OneWay: *oneway})
	if err != nil {
		return a.fail("partition "+lab, err)
	}
	for _, act := range res.Plan {
		fmt.Fprintln(a.stdout, act)
	}
	how := "both ways"
	if res.Partition.OneWay {
		how = "one way: the first group's packets to the second"
	}
	done := ""
	if len(res.Plan) == 0 {
		done = ": up to date"
	}
	fmt.Fprintf(a.stdout, "lab %s: partition %s: %s (%s; netlab heal %s %s lifts it)%s\n",
		lab, res.Partition.Name, engine.PartitionText(res.Partition), how, lab, res.Partition.Name, done)
	return exitOK
}

// partitionGroups reads the two groups from the arguments after the lab:
// "a,b / c", "a,b/c", "a b / c d": namespaces split by commas or spaces,
// the groups by one "/". A group must not be empty, nor a namespace be in
// both, nor the host in either. It touches nothing: a function of the
// arguments alone.
func partitionGroups(args []string) (a, b []string, err error) {
	left, right, ok := strings.Cut(strings.Join(args, " "), "/")
	if !ok || strings.Contains(right, "/") {
		return nil, nil, fmt.Errorf("want two groups split by one /, as a,b / c")
	}
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	}
	a, b = split(left), split(right)
	if len(a) == 0 || len(b) == 0 {
		return nil, nil, fmt.Errorf("a group is empty: want a,b / c")
	}
	for _, ns := range append(slices.Clone(a), b...) {
		if ns == "host" {
			return nil, nil, fmt.Errorf("the host is shared with the machine and other labs, and is in no partition")
		}
	}
	for _, ns := range a {
		if slices.Contains(b, ns) {
			return nil, nil, fmt.Errorf("namespace %s is in both groups", ns)
		}
	}
	return a, b, nil
}

// heal: netlab heal LAB [NAME...]. Lifts the partitions named, or every
// partition of the lab. Idempotent: a partition not in force is said so.
func (a *app) heal(args []string) int {
	fs := a.flags("heal", "LAB [NAME...]")
	pos, code, ok := positional(fs, args, 1, -1)
	if !ok {
		return code
	}
	lab := pos[0]
	if !validLabName(lab) {
		fmt.Fprintf(a.stderr, "netlab heal: %q is not a lab name ([a-z0-9-])\n", lab)
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("heal", args)
	}
	res, err := a.engine(nil).Heal(lab, pos[1:]...)
	if err != nil {
		return a.fail("heal "+lab, err)
	}
	for _, act := range res.Plan {
		fmt.Fprintln(a.stdout, act)
	}
	for _, p := range res.Healed {
		fmt.Fprintf(a.stdout, "lab %s: partition %s (%s): healed\n", lab, p.Name, engine.PartitionText(p))
	}
	for _, n := range res.Missing {
		fmt.Fprintf(a.stdout, "lab %s: partition %s: not in force (nothing to heal)\n", lab, n)
	}
	if len(res.Healed) == 0 && len(res.Missing) == 0 {
		fmt.Fprintf(a.stdout, "lab %s: no partition in force\n", lab)
	}
	return exitOK
}

// printEvents prints the lab's pulled cables and partitions: its intent,
// not drift.
func printEvents(w io.Writer, st *engine.LabStatus) {
	for _, c := range st.LinksDown {
		where := "held down by " + c.Device
		if c.Device == "" {
			where = "nothing of it on this machine"
		}
		fmt.Fprintf(w, "  link %s: cable pulled (netlab link; %s)\n", c.Interface, where)
	}
	for _, p := range st.Partitions {
		q := state.Partition{Name: p.Name, A: p.A, B: p.B, OneWay: p.OneWay}
		how := "both ways"
		if p.OneWay {
			how = "one way"
		}
		fmt.Fprintf(w, "  partition %s: %s (%s, netlab partition): %d packets dropped here\n", p.Name, engine.PartitionText(q), how, p.Dropped)
	}
}
