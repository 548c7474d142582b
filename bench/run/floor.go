package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The floor: bench/floor makes the same star as directly as the kernel
// allows, with netlab's markers and sysctls. Each contender runs in a world
// of its own (world.go), the two in a random order each round, and the
// ratio is taken per round (netlab ÷ floor of the same round) before the
// median: a machine shared with other work slows both alike within a
// round, much less so across rounds.

// contender is netlab or the floor.
type contender string

const (
	byNetlab contender = "netlab"
	byFloor  contender = "floor"
)

// floorCase is one measured lab: a star of n namespaces over bridges
// bridges of a type (linux, ovs, none: bare namespaces).
type floorCase struct {
	bridge  string
	n       int
	bridges int
}

func (fc floorCase) String() string {
	s := fmt.Sprintf("%s, N = %d", map[string]string{"linux": "Linux bridge", "ovs": "Open vSwitch", "none": "bare namespaces"}[fc.bridge], fc.n)
	if fc.bridges > 1 {
		s += fmt.Sprintf(" over %d bridges", fc.bridges)
	}
	return s
}

// floorRun is one contender's figures in one round.
type floorRun struct {
	up, again, down float64
	rssKB           int64
	fds             int
}

type floorResult struct {
	fc     floorCase
	rounds map[contender][]floorRun
}

// starFile writes the case's lab file (bench/star), once.
func (c *config) starFile(fc floorCase) (string, error) {
	file := filepath.Join(c.tmp, fmt.Sprintf("floor-%s-%d-%d.yaml", fc.bridge, fc.n, fc.bridges))
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	args := []string{"-n", strconv.Itoa(fc.n), "-bridge", fc.bridge, "-bridges", strconv.Itoa(fc.bridges), "-o", file}
	if fc.bridge == "ovs" {
		args = append(args, "-port-type", "system")
	}
	if b, err := c.command(c.star, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("star: %v: %s", err, b)
	}
	return file, nil
}

// labName is the name bench/star gives the case's lab (markers carry it).
func labName(fc floorCase) string {
	short := map[string]string{"ovs": "ovs", "linux": "lx", "none": "ns"}[fc.bridge]
	name := fmt.Sprintf("star-%s-%d", short, fc.n)
	if len(name) > 12 {
		name = fmt.Sprintf("s%s%d", short, fc.n)
	}
	return name
}

// measureFloor runs rounds of the case, netlab and the floor each in a
// world of its own, in a random order per round.
func (c *config) measureFloor(fc floorCase, rounds int, again bool) (*floorResult, error) {
	file, err := c.starFile(fc)
	if err != nil {
		return nil, err
	}
	res := &floorResult{fc: fc, rounds: map[contender][]floorRun{}}
	fmt.Fprintf(os.Stderr, "bench: floor, %s:", fc)
	for round := 0; round < rounds; round++ {
		order := []contender{byNetlab, byFloor}
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, who := range order {
			r, err := c.floorRound(fc, who, file, again)
			if err != nil {
				return nil, fmt.Errorf("%s, %s: %w", fc, who, err)
			}
			res.rounds[who] = append(res.rounds[who], r)
			fmt.Fprintf(os.Stderr, " %s %.2f/%.2f", who, r.up, r.down)
		}
	}
	fmt.Fprintln(os.Stderr)
	return res, nil
}

// floorRound brings the case up (and, for netlab with again, up a second
// time) and down in a new world, checks that nothing is left, and ends the
// world.
func (c *config) floorRound(fc floorCase, who contender, file string, again bool) (floorRun, error) {
	var r floorRun
	w, err := c.newWorld(fc.bridge == "ovs")
	if err != nil {
		return r, err
	}
	defer w.close()
	prefix := newPrefix()
	var up, down []string
	var env []string
	switch who {
	case byNetlab:
		up = []string{c.netlab, "up", "-q", "--prefix", prefix, file}
		down = []string{c.netlab, "down", "-q", "--prefix", prefix, file}
		if c.parallel > 0 {
			env = []string{"NETLAB_PARALLEL=" + strconv.Itoa(c.parallel)}
		}
	case byFloor:
		args := []string{"-n", strconv.Itoa(fc.n), "-bridge", fc.bridge, "-bridges", strconv.Itoa(fc.bridges), "-prefix", prefix, "-lab", prefix + labName(fc)}
		if c.floorWorkers > 0 {
			args = append(args, "-workers", strconv.Itoa(c.floorWorkers))
		}
		up = append(append([]string{c.floor}, args...), "up")
		down = append(append([]string{c.floor}, args...), "down")
	}
	waitQuiet()
	rep := w.run(env, up...)
	if rep.Err != "" {
		return r, fmt.Errorf("up: %s\n%s", rep.Err, rep.Output)
	}
	r.up, r.rssKB, r.fds = rep.Seconds, rep.MaxRSSKB, rep.MaxFDs
	if who == byNetlab && again {
		waitQuiet()
		rep = w.run(env, up...)
		if rep.Err != "" {
			return r, fmt.Errorf("second up: %s\n%s", rep.Err, rep.Output)
		}
		if !strings.Contains(rep.Output, "up to date") {
			return r, fmt.Errorf("second up was not up to date: %s", rep.Output)
		}
		r.again = rep.Seconds
		r.rssKB, r.fds = max(r.rssKB, rep.MaxRSSKB), max(r.fds, rep.MaxFDs)
	}
	waitQuiet()
	rep = w.run(env, down...)
	if rep.Err != "" {
		return r, fmt.Errorf("down: %s\n%s", rep.Err, rep.Output)
	}
	r.down = rep.Seconds
	r.rssKB, r.fds = max(r.rssKB, rep.MaxRSSKB), max(r.fds, rep.MaxFDs)
	if left := w.residue(prefix); len(left) > 0 {
		return r, fmt.Errorf("%w: %s", errResidue, strings.Join(left, ", "))
	}
	return r, nil
}

// pick returns one figure of every round of a contender.
func (fr *floorResult) pick(who contender, f func(floorRun) float64) []float64 {
	var out []float64
	for _, r := range fr.rounds[who] {
		out = append(out, f(r))
	}
	return out
}

// ratio is the median of the rounds' netlab ÷ floor of a figure.
func (fr *floorResult) ratio(f func(floorRun) float64) float64 {
	var rs []float64
	nl, fl := fr.rounds[byNetlab], fr.rounds[byFloor]
	for i := range min(len(nl), len(fl)) {
		rs = append(rs, f(nl[i])/f(fl[i]))
	}
	return median(rs)
}

func upOf(r floorRun) float64    { return r.up }
func downOf(r floorRun) float64  { return r.down }
func againOf(r floorRun) float64 { return r.again }

// floorSection measures the stars against the floor and prints the table.
func (c *config) floorSection(w io.Writer) error {
	var results []*floorResult
	for _, br := range c.bridges {
		for _, n := range c.floorSizes {
			r, err := c.measureFloor(floorCase{bridge: br, n: n, bridges: 1}, c.floorRounds, n == 100)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	fmt.Fprintf(w, "## netlab against the floor\n\n")
	fmt.Fprintf(w, "bench/floor makes the same star as directly as the kernel allows, with netlab's markers and its six sysctls per namespace (see its doc comment). Each contender runs in a throwaway world of its own (`unshare --net --mount --pid` with a private /run and /sys, an Open vSwitch of its own for the OVS rows), the two in a random order each round; %d rounds. Each timed step starts once the machine's CPUs are idle (under 15 %% busy over 100 ms, waiting at most 5 s), so the kernel's and ovs-vswitchd's leftover work from the step before lands in neither contender. Seconds, medians; the ratios are medians of each round's netlab ÷ floor. Peak RSS and open files: netlab's, over up, second up and down (files sampled every 20 ms).\n\n", c.floorRounds)
	fmt.Fprintf(w, "| bridge | N | netlab up | floor up | up ÷ floor | netlab down | floor down | down ÷ floor | netlab up, ms per namespace | floor up, ms per namespace | second up (converged) | netlab peak RSS | netlab most open files |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		nu, fu := median(r.pick(byNetlab, upOf)), median(r.pick(byFloor, upOf))
		nd, fd := median(r.pick(byNetlab, downOf)), median(r.pick(byFloor, downOf))
		again := "-"
		if a := r.pick(byNetlab, againOf); len(a) > 0 && a[0] > 0 {
			again = fmt.Sprintf("%.3f", median(a))
		}
		var rss int64
		fds := 0
		for _, x := range r.rounds[byNetlab] {
			rss, fds = max(rss, x.rssKB), max(fds, x.fds)
		}
		fmt.Fprintf(w, "| %s | %d | %.3f | %.3f | **%.2f×** | %.3f | %.3f | **%.2f×** | %.2f | %.2f | %s | %.1f MB | %d |\n",
			r.fc.bridge, r.fc.n, nu, fu, r.ratio(upOf), nd, fd, r.ratio(downOf), nu/float64(r.fc.n)*1000, fu/float64(r.fc.n)*1000, again, float64(rss)/1024, fds)
	}
	fmt.Fprintf(w, "\nRounds (up/down, seconds):\n\n")
	for _, r := range results {
		fmt.Fprintf(w, "- %s: netlab %s; floor %s\n", r.fc, roundsText(r.rounds[byNetlab]), roundsText(r.rounds[byFloor]))
	}
	fmt.Fprintln(w)
	return nil
}

func roundsText(rs []floorRun) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.3f/%.3f", r.up, r.down))
	}
	return strings.Join(parts, ", ")
}

// scaleSection brings labs of 1,000 and 10,000 namespaces up, up again
// and down: bare namespaces, stars over Linux bridges of at most 1,000
// ports, and an Open vSwitch lab of 1,000 ports over 4 bridges; netlab and
// the floor each in a world of its own.
func (c *config) scaleSection(w io.Writer) error {
	cases := []floorCase{}
	for _, n := range c.scaleSizes {
		cases = append(cases, floorCase{bridge: "none", n: n, bridges: 1}, floorCase{bridge: "linux", n: n, bridges: (n + 999) / 1000})
	}
	cases = append(cases, floorCase{bridge: "ovs", n: 1000, bridges: 4})
	var results []*floorResult
	for _, fc := range cases {
		rounds := c.scaleRounds
		if fc.n <= 1000 {
			rounds = max(rounds, c.scaleSmallRounds)
		}
		r, err := c.measureFloor(fc, rounds, true)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Fprintf(w, "## Scale: 1,000 to 10,000 namespaces\n\n")
	fmt.Fprintf(w, "Each lab up, up again (converged: observe and an empty plan) and down, netlab and bench/floor each in a world of its own, in a random order each round; %d round(s) of the labs of at most 1,000 namespaces, %d of the larger ones; medians. Per namespace: the time ÷ N, in ms; `÷ 1,000` compares netlab's cost per namespace with the median cost per namespace of the 1,000-namespace lab of the same kind. Peak RSS and most open files: netlab's.\n\n", max(c.scaleRounds, c.scaleSmallRounds), c.scaleRounds)
	fmt.Fprintf(w, "| lab | netlab up | per ns | ÷ 1,000 | floor up | up ÷ floor | second up | per ns | netlab down | per ns | floor down | down ÷ floor | netlab peak RSS | netlab most open files |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	base := map[string]float64{}
	for _, r := range results {
		n := float64(r.fc.n)
		nu, fu := median(r.pick(byNetlab, upOf)), median(r.pick(byFloor, upOf))
		na := median(r.pick(byNetlab, againOf))
		nd, fd := median(r.pick(byNetlab, downOf)), median(r.pick(byFloor, downOf))
		per := nu / n * 1000
		rel := "-"
		if r.fc.n == 1000 {
			base[r.fc.bridge] = per
		} else if b := base[r.fc.bridge]; b > 0 {
			rel = fmt.Sprintf("%.2f×", per/b)
		}
		var rss int64
		fds := 0
		for _, x := range r.rounds[byNetlab] {
			rss, fds = max(rss, x.rssKB), max(fds, x.fds)
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %s | %.2f | %.2f× | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f× | %.0f MB | %d |\n",
			r.fc, nu, per, rel, fu, r.ratio(upOf), na, na/n*1000, nd, nd/n*1000, fd, r.ratio(downOf), float64(rss)/1024, fds)
	}
	fmt.Fprintf(w, "\nRounds (up/down, seconds):\n\n")
	for _, r := range results {
		fmt.Fprintf(w, "- %s: netlab %s; floor %s\n", r.fc, roundsText(r.rounds[byNetlab]), roundsText(r.rounds[byFloor]))
	}
	fmt.Fprintln(w)
	return nil
}
