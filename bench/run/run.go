// Command run is netlab's benchmark (`make bench`). In one run, on
// this machine, it times `netlab up` and `netlab down` of the star labs that
// bench/star writes (one bridge, N namespaces on veths; N = 10, 50, 100, 250;
// Open vSwitch userspace and Linux bridge) against two shell baselines doing
// the same work (bench/batched.sh, bench/naive.sh), and prints markdown
// tables: medians of -runs runs, the ratios, the cost per namespace, netlab's
// peak RSS, the time of a second `up` of a converged 100-namespace lab, and
// TCP throughput (iperf3) between two namespaces through a direct veth, a
// Linux bridge, an OVS bridge and the OVS learning-switch preset.
//
// After every down it proves zero residue: no namespace, link, OVS bridge or
// port, nftables table or netlab journal named with that run's prefix; it
// fails loudly otherwise. Every lab gets a fresh prefix bnXXX- (3 hex digits),
// checked unused first, so it never touches anything it did not create.
//
// The Open vSwitch runs use the OVS netlab uses: the system one if it runs,
// else netlab's private instance, kept up for the baselines by a one-bridge
// lab ("keep") that is taken down at the end.
//
// Needs root, iproute2, ovs-vsctl, ethtool, iperf3 and Go; it builds the
// tree's netlab, floor and star itself (-netlab times another binary):
//
//	go run ./bench/run [-runs 3] [-quick]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// privateDB is the db socket of netlab's private Open vSwitch.
const privateDB = "/run/netlab/ovs/db.sock"

type config struct {
	root      string // the repository
	netlab    string // the binary under test
	star      string // the bench/star binary, built into tmp
	floor     string // the bench/floor binary, built into tmp
	tmp       string
	runs      int
	sizes     []int
	bridges   []string
	iperf     time.Duration
	datapath  bool
	afxdp     bool
	sandboxes bool
	verbose   bool
	naiveMax  int // above this N the naive script runs once (it takes a minute)

	floorSizes   []int // the stars measured against bench/floor
	floorRounds  int
	floorWorkers int // bench/floor's worker threads (0: its default)
	parallel     int // netlab's actions at once (NETLAB_PARALLEL; 0: its default)
	scaleSizes   []int
	scaleRounds  int
	// scaleSmallRounds: rounds of the scale labs of at most 1,000
	// namespaces, which are cheap and the base of every ÷ 1,000.
	scaleSmallRounds int
	only             string // "floor" or "scale": that section alone
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-world-agent" {
		worldAgent()
		return
	}
	runs := flag.Int("runs", 3, "runs per measurement (medians are printed)")
	quick := flag.Bool("quick", false, "N = 10 and 100 only")
	sizesFlag := flag.String("sizes", "10,50,100,250", "star sizes N")
	bridgesFlag := flag.String("bridges", "ovs,linux", "bridge types")
	netlabBin := flag.String("netlab", "", "the netlab binary to time (default: built from this tree, without cgo, as make builds it)")
	iperf := flag.Duration("iperf", 2*time.Second, "length of each iperf3 run")
	noDatapath := flag.Bool("no-datapath", false, "skip the iperf3 figures")
	noAFXDP := flag.Bool("no-afxdp", false, "skip the AF_XDP port section")
	noSandbox := flag.Bool("no-sandbox", false, "skip the sections on sandboxes and labs over two machines")
	out := flag.String("o", "", "also write the report to this file")
	verbose := flag.Bool("v", false, "log every step on stderr")
	naiveMax := flag.Int("naive-max", 100, "above this N the naive script runs once, not -runs times (it takes about a minute at N=250)")
	floorSizes := flag.String("floor-sizes", "100,250", "star sizes measured against bench/floor")
	floorRounds := flag.Int("floor-rounds", 11, "paired rounds against bench/floor (the median of 7 moved by up to 0.15 between runs)")
	floorWorkers := flag.Int("floor-workers", 0, "bench/floor's worker threads (0: its default)")
	parallel := flag.Int("parallel", 0, "netlab's actions at once (NETLAB_PARALLEL; 0: its default)")
	scale := flag.Bool("scale", false, "measure the scale section alone: labs of -scale-sizes namespaces (make bench-scale)")
	floorOnly := flag.Bool("floor-only", false, "measure the floor section alone")
	scaleSizes := flag.String("scale-sizes", "1000,10000", "sizes of the scale section")
	scaleRounds := flag.Int("scale-rounds", 2, "rounds of the scale section's labs above 1,000 namespaces (one round of 10,000 bare namespaces took 6.2 s in one run and 9.5 s in the next; the two rounds of 10,000 over bridges of one run agreed within 0.3 %)")
	scaleSmallRounds := flag.Int("scale-small-rounds", 5, "rounds of the scale section's labs of at most 1,000 namespaces, the base of its ÷ 1,000 (one round of 1,000 on a Linux bridge moved from 1.48 to 2.54 s between runs)")
	flag.Parse()

	if os.Geteuid() != 0 {
		fatalf("needs root (namespaces, links, Open vSwitch)")
	}
	root, err := repoRoot()
	if err != nil {
		fatalf("%v", err)
	}
	c := &config{root: root, runs: *runs, iperf: *iperf, datapath: !*noDatapath, afxdp: !*noAFXDP, sandboxes: !*noSandbox, verbose: *verbose, naiveMax: *naiveMax,
		floorRounds: *floorRounds, floorWorkers: *floorWorkers, parallel: *parallel, scaleRounds: *scaleRounds, scaleSmallRounds: *scaleSmallRounds}
	if *scale {
		c.only = "scale"
	} else if *floorOnly {
		c.only = "floor"
	}
	if c.floorSizes, err = parseInts(*floorSizes); err != nil {
		fatalf("-floor-sizes: %v", err)
	}
	if c.scaleSizes, err = parseInts(*scaleSizes); err != nil {
		fatalf("-scale-sizes: %v", err)
	}
	if c.runs < 1 {
		fatalf("-runs %d: want at least 1", c.runs)
	}
	if c.sizes, err = parseInts(*sizesFlag); err != nil {
		fatalf("-sizes: %v", err)
	}
	if *quick {
		c.sizes = []int{10, 100}
	}
	c.bridges = strings.Split(*bridgesFlag, ",")
	for _, b := range c.bridges {
		if b != "ovs" && b != "linux" {
			fatalf("-bridges: %q: want ovs or linux", b)
		}
	}
	if *netlabBin != "" {
		c.netlab, _ = filepath.Abs(filepath.Join(root, *netlabBin))
		if filepath.IsAbs(*netlabBin) {
			c.netlab = *netlabBin
		}
		if _, err := os.Stat(c.netlab); err != nil {
			fatalf("-netlab: %v", err)
		}
	}
	for _, tool := range []string{"ip", "ss", "ovs-vsctl", "ethtool", "iperf3", "nft", "nsenter", "setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatalf("%s is needed: %v", tool, err)
		}
	}
	if c.tmp, err = os.MkdirTemp("", "netlab-bench-"); err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(c.tmp)
	// Readable by the worlds' processes (their /tmp is the machine's).
	if err := os.Chmod(c.tmp, 0o755); err != nil {
		fatalf("%v", err)
	}
	c.star = filepath.Join(c.tmp, "star")
	if b, err := c.command("go", "build", "-o", c.star, "./bench/star").CombinedOutput(); err != nil {
		fatalf("build bench/star: %v\n%s", err, b)
	}
	// Static, as make builds netlab: the floor starts no slower than it.
	c.floor = filepath.Join(c.tmp, "floor")
	c.buildStatic(c.floor, "./bench/floor")
	if c.netlab == "" {
		// The tree's netlab, not a binary left from another run: a
		// morning's six runs once timed the previous day's.
		c.netlab = filepath.Join(c.tmp, "netlab")
		c.buildStatic(c.netlab, "./cmd/netlab")
	}

	var report bytes.Buffer
	w := io.MultiWriter(os.Stdout, &report)
	err = c.run(w)
	if *out != "" {
		if werr := os.WriteFile(*out, report.Bytes(), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fatalf("%v", err)
	}
}

func (c *config) run(w io.Writer) (err error) {
	start := time.Now()
	before := hostFingerprint()
	fmt.Fprintf(w, "# netlab benchmark\n\n%s, %d run(s) per figure, medians. netlab %s.\n\n", start.Format("2006-01-02 15:04 MST"), c.runs, c.netlabVersion())
	fmt.Fprintf(w, "Machine: %s\n\n", machine())
	fmt.Fprintf(w, "Load before: %s\n\n", loadAvg())
	defer func() { fmt.Fprintf(w, "Load after: %s\n", loadAvg()) }()

	switch c.only {
	case "scale":
		return c.scaleSection(w)
	case "floor":
		return c.floorSection(w)
	}
	if err := c.floorSection(w); err != nil {
		return err
	}

	var results []*result
	var keeper *lab
	defer func() {
		if keeper != nil {
			if derr := c.down(keeper); derr != nil && err == nil {
				err = fmt.Errorf("take down keeper lab: %w", derr)
			}
		}
	}()
	for _, br := range c.bridges {
		if br == "ovs" && keeper == nil {
			if keeper, err = c.startKeeper(); err != nil {
				return err
			}
		}
		for _, n := range c.sizes {
			r, err := c.measure(br, n)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	printResults(w, results)

	if c.afxdp && slices.Contains(c.bridges, "ovs") {
		if err := c.afxdpCost(w); err != nil {
			return err
		}
	}
	if c.datapath {
		if keeper == nil {
			if keeper, err = c.startKeeper(); err != nil {
				return err
			}
		}
		if err := c.dataPath(w); err != nil {
			return err
		}
	}
	if keeper != nil {
		k := keeper
		keeper = nil
		if err := c.down(k); err != nil {
			return fmt.Errorf("take down keeper lab: %w", err)
		}
	}
	// With no lab of the bench's up: the machine's figures start from no
	// Open vSwitch, like the sandboxes'.
	if c.sandboxes {
		if err := c.sandboxSection(w); err != nil {
			return err
		}
		if err := c.multiMachineSection(w); err != nil {
			return err
		}
	}
	after := hostFingerprint()
	fmt.Fprintf(w, "\nHost before and after the whole run (ip netns, ip -br link, ovs-vsctl show, nft ruleset): ")
	if d := diffLines(before, after); d == "" {
		fmt.Fprintf(w, "identical.\n")
	} else {
		fmt.Fprintf(w, "differ (other users of the machine, or residue: see the lines; no line names a bn prefix of this run or the run would have failed):\n\n```\n%s```\n", d)
	}
	fmt.Fprintf(w, "\nTotal bench time %.0f s.\n", time.Since(start).Seconds())
	return nil
}

// ---------------------------------------------------------------------------
// Measuring up and down.

type tool string

const (
	toolNetlab  tool = "netlab"
	toolBatched tool = "batched"
	toolNaive   tool = "naive"
)

var tools = []tool{toolNetlab, toolBatched, toolNaive}

type result struct {
	bridge   string
	n        int
	up, down map[tool][]float64 // seconds, one per run
	settle   map[tool][]float64 // seconds from the end of down to zero residue
	rssKB    int64              // netlab's peak RSS over up, second up and down
	second   []float64          // second up of the converged lab (N = 100)
}

// lab is one lab on the machine: its prefix and, for netlab, its file.
type lab struct {
	prefix, file, bridge string
	n                    int
	tool                 tool
	// portType is the OVS port type the scripts make (PORT_TYPE; "" is
	// system); netlab's comes from the file.
	portType string
}

// env is the environment of the lab's script.
func (l *lab) env() []string {
	if l.portType == "" {
		return nil
	}
	return []string{"PORT_TYPE=" + l.portType}
}

func (c *config) measure(br string, n int) (*result, error) {
	r := &result{bridge: br, n: n, up: map[tool][]float64{}, down: map[tool][]float64{}, settle: map[tool][]float64{}}
	file := filepath.Join(c.tmp, fmt.Sprintf("star-%s-%d.yaml", br, n))
	args := []string{"-n", strconv.Itoa(n), "-bridge", br, "-o", file}
	if br == "ovs" {
		// The scripts make system (AF_PACKET) ports; so does netlab here,
		// for the same work. AF_XDP ports, netlab's default on small
		// bridges, are measured on their own (afxdpCost).
		args = append(args, "-port-type", "system")
	}
	if b, err := exec.Command(c.star, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("star: %v: %s", err, b)
	}
	fmt.Fprintf(os.Stderr, "bench: %s star, N=%d:", br, n)
	for run := 0; run < c.runs; run++ {
		for _, t := range tools {
			if t == toolNaive && run > 0 && n > c.naiveMax {
				continue
			}
			l := &lab{prefix: newPrefix(), file: file, bridge: br, n: n, tool: t}
			up, rss, err := c.up(l)
			if err != nil {
				c.cleanup(l)
				return nil, err
			}
			r.up[t] = append(r.up[t], up)
			r.rssKB = max(r.rssKB, rss)
			if t == toolNetlab && n == 100 {
				again, rss, err := c.up(l)
				if err != nil {
					c.cleanup(l)
					return nil, fmt.Errorf("second up: %w", err)
				}
				r.second = append(r.second, again)
				r.rssKB = max(r.rssKB, rss)
			}
			down, rss, err := c.timedDown(l)
			if err != nil {
				c.cleanup(l)
				return nil, err
			}
			r.down[t] = append(r.down[t], down)
			r.rssKB = max(r.rssKB, rss)
			settle, err := waitClean(l.prefix, 10*time.Second)
			if err != nil {
				return nil, fmt.Errorf("%s down of %s star N=%d (prefix %s): %w", t, br, n, l.prefix, err)
			}
			r.settle[t] = append(r.settle[t], settle)
			fmt.Fprintf(os.Stderr, " %s %.2f/%.2f", t, up, down)
		}
	}
	fmt.Fprintf(os.Stderr, "\n")
	return r, nil
}

// up brings the lab up and returns the wall time and peak RSS (netlab only).
func (c *config) up(l *lab) (float64, int64, error) {
	switch l.tool {
	case toolNetlab:
		return c.timed(nil, c.netlab, "up", "-q", "--prefix", l.prefix, l.file)
	default:
		return c.timed(l.env(), filepath.Join(c.root, "bench", string(l.tool)+".sh"), strconv.Itoa(l.n), l.bridge, l.prefix, "up")
	}
}

func (c *config) timedDown(l *lab) (float64, int64, error) {
	switch l.tool {
	case toolNetlab:
		return c.timed(nil, c.netlab, "down", "--prefix", l.prefix, l.file)
	default:
		return c.timed(l.env(), filepath.Join(c.root, "bench", string(l.tool)+".sh"), strconv.Itoa(l.n), l.bridge, l.prefix, "down")
	}
}

// down takes a lab down and checks that nothing of it is left.
func (c *config) down(l *lab) error {
	if _, _, err := c.timedDown(l); err != nil {
		return err
	}
	_, err := waitClean(l.prefix, 10*time.Second)
	return err
}

// cleanup removes what a failed measurement may have left, with the tool
// that made it, then with the batched script (it touches only the prefix's
// names), and reports what is still there.
func (c *config) cleanup(l *lab) {
	fmt.Fprintf(os.Stderr, "\nbench: cleaning up prefix %s after a failure\n", l.prefix)
	_, _, _ = c.timedDown(l)
	if l.tool == toolNetlab {
		_, _, _ = c.timed(nil, filepath.Join(c.root, "bench", "batched.sh"), strconv.Itoa(l.n), l.bridge, l.prefix, "down")
	}
	if _, err := waitClean(l.prefix, 10*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "bench: RESIDUE after cleanup: %v\n", err)
	}
}

// timed runs a command and returns its wall time in seconds and its peak
// RSS in KB (the kernel's ru_maxrss: the largest of the process and the
// children it waited for). A failure carries the command's output.
func (c *config) timed(env []string, name string, args ...string) (float64, int64, error) {
	cmd := c.command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0).Seconds()
	if c.verbose {
		fmt.Fprintf(os.Stderr, "\n  %.3fs %s %s", d, filepath.Base(name), strings.Join(args, " "))
	}
	if err != nil {
		return d, 0, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return d, rss, nil
}

// buildStatic builds the package pkg of the tree into out without cgo.
func (c *config) buildStatic(out, pkg string) {
	cmd := c.command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fatalf("build %s: %v\n%s", pkg, err, b)
	}
}

// command runs in the repository, so bench/star and bench/*.sh resolve.
func (c *config) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.root
	return cmd
}

// ---------------------------------------------------------------------------
// Prefixes and residue.

var prefixBase = rand.IntN(4096)
var prefixNext int

// newPrefix returns a prefix bnXXX- that names nothing on the machine yet.
func newPrefix() string {
	for range 4096 {
		p := fmt.Sprintf("bn%03x-", (prefixBase+prefixNext)%4096)
		prefixNext++
		if len(residue(p)) == 0 {
			return p
		}
	}
	fatalf("no free bnXXX- prefix")
	return ""
}

// residue lists what the machine still has named with the prefix:
// namespaces, host links, OVS bridges, ports and interfaces, nftables
// tables, netlab journals.
func residue(p string) []string {
	var left []string
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				left = append(left, "namespace "+e.Name())
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				left = append(left, "link "+e.Name())
			}
		}
	}
	if ents, err := os.ReadDir("/run/netlab/labs"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				left = append(left, "netlab journal /run/netlab/labs/"+e.Name())
			}
		}
	}
	if out, err := ovsShow(); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], p) {
				left = append(left, "ovs "+strings.ToLower(f[0])+" "+f[1])
			}
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "netlab_"+p) || strings.Contains(line, " "+p) {
				left = append(left, "nftables "+strings.TrimSpace(line))
			}
		}
	}
	return left
}

// waitClean waits until nothing named with the prefix is left and returns
// how long that took: the kernel tears deleted namespaces down (and the
// veths inside with their host peers) asynchronously, after `ip netns del`
// and netlab down have returned.
//
// The time is when the check that found nothing began (0 when the first
// did): the check itself runs ovs-vsctl and nft and takes tens of
// milliseconds, which are not the kernel's.
func waitClean(p string, limit time.Duration) (float64, error) {
	t0 := time.Now()
	for {
		began := time.Now()
		left := residue(p)
		if len(left) == 0 {
			return began.Sub(t0).Seconds(), nil
		}
		if time.Since(t0) > limit {
			return 0, fmt.Errorf("RESIDUE %s after %s:\n  %s", p, limit, strings.Join(left, "\n  "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ovsDB returns the db socket of the OVS netlab uses, or "" if none runs.
func ovsDB() string {
	for _, s := range []string{"/run/openvswitch/db.sock", "/var/run/openvswitch/db.sock", privateDB} {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return s
		}
	}
	return ""
}

func ovsShow() (string, error) {
	db := ovsDB()
	if db == "" {
		return "", errors.New("no ovs")
	}
	out, err := exec.Command("ovs-vsctl", "--db=unix:"+db, "--timeout=10", "show").Output()
	return string(out), err
}

// hostFingerprint is what the run compares before and after: namespaces,
// links (name and state), the OVS configuration and the nftables ruleset.
func hostFingerprint() string {
	var b strings.Builder
	for _, args := range [][]string{{"netns", "ip", "netns", "list"}, {"link", "ip", "-br", "link"}, {"nft", "nft", "list", "ruleset"}} {
		out, _ := exec.Command(args[1], args[2:]...).Output()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" {
				fmt.Fprintf(&b, "%s: %s\n", args[0], line)
			}
		}
	}
	if out, err := ovsShow(); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.TrimSpace(line); f != "" {
				fmt.Fprintf(&b, "ovs: %s\n", f)
			}
		}
	}
	return b.String()
}

func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var d strings.Builder
	for _, l := range as {
		if l != "" && !slices.Contains(bs, l) {
			fmt.Fprintf(&d, "- %s\n", l)
		}
	}
	for _, l := range bs {
		if l != "" && !slices.Contains(as, l) {
			fmt.Fprintf(&d, "+ %s\n", l)
		}
	}
	return d.String()
}

// ---------------------------------------------------------------------------
// The Open vSwitch keeper lab.

// startKeeper brings up a one-bridge lab so that the OVS netlab uses (its
// private instance when no system OVS runs) stays up for the baselines and
// between netlab's runs: every tool then measures against a running OVS.
func (c *config) startKeeper() (*lab, error) {
	file := filepath.Join(c.tmp, "keep.yaml")
	if err := os.WriteFile(file, []byte("# bench: keeps Open vSwitch running\nname: keep\nbridges:\n  kbr:\n    type: ovs\n"), 0o644); err != nil {
		return nil, err
	}
	l := &lab{prefix: newPrefix(), file: file, bridge: "ovs", tool: toolNetlab}
	d, _, err := c.up(l)
	if err != nil {
		c.cleanup(l)
		return nil, fmt.Errorf("keeper lab: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: keeper lab %skeep up in %.2f s (OVS at %s)\n", l.prefix, d, ovsDB())
	return l, nil
}

// ---------------------------------------------------------------------------
// AF_XDP ports.

// afxdpSizes are the star sizes of the AF_XDP section: port-type auto makes
// AF_XDP ports on bridges of up to 16 ports.
var afxdpSizes = []int{2, 10, 16}

// afxdpCost times up and down of OVS stars whose ports are AF_XDP (netlab's
// default, port-type auto) against the batched script making the same
// afxdp-nonpmd ports, and netlab with system ports, and reads what the ports
// add to ovs-vswitchd's resident memory.
func (c *config) afxdpCost(w io.Writer) error {
	fmt.Fprintf(w, "\n## AF_XDP ports\n\nOVS stars whose veth ports are `afxdp-nonpmd` (netlab's port-type auto on a bridge of up to 16 ports here) against bench/batched.sh making the same ports (PORT_TYPE=afxdp-nonpmd), and netlab with `port-type: system`. Seconds, medians of %d runs. ovs-vswitchd RSS: what the lab's ports add to the switch's resident memory, read after up.\n\n", c.runs)
	fmt.Fprintf(w, "| N | netlab up, AF_XDP | batched up, AF_XDP | up ÷ batched | netlab up, system | netlab down, AF_XDP | batched down, AF_XDP | down ÷ batched | netlab down, system | ovs-vswitchd RSS added, AF_XDP | same, system |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range afxdpSizes {
		auto := filepath.Join(c.tmp, fmt.Sprintf("afxdp-%d.yaml", n))
		sys := filepath.Join(c.tmp, fmt.Sprintf("afxdp-%d-system.yaml", n))
		for file, pt := range map[string]string{auto: "", sys: "system"} {
			args := []string{"-n", strconv.Itoa(n), "-bridge", "ovs", "-name", fmt.Sprintf("afxdp-%d", n), "-o", file}
			if pt != "" {
				args = append(args, "-port-type", pt)
			}
			if b, err := exec.Command(c.star, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("star: %v: %s", err, b)
			}
		}
		fmt.Fprintf(os.Stderr, "bench: AF_XDP star, N=%d:", n)
		var up, down [3][]float64 // netlab AF_XDP, batched AF_XDP, netlab system
		var rss [3][]float64      // MB added
		for run := 0; run < c.runs; run++ {
			for k, l := range []*lab{
				{file: auto, bridge: "ovs", n: n, tool: toolNetlab},
				{file: auto, bridge: "ovs", n: n, tool: toolBatched, portType: "afxdp-nonpmd"},
				{file: sys, bridge: "ovs", n: n, tool: toolNetlab},
			} {
				l.prefix = newPrefix()
				before := vswitchdRSS()
				d, _, err := c.up(l)
				if err != nil {
					c.cleanup(l)
					return err
				}
				up[k] = append(up[k], d)
				rss[k] = append(rss[k], float64(vswitchdRSS()-before)/(1<<20))
				d, _, err = c.timedDown(l)
				if err != nil {
					c.cleanup(l)
					return err
				}
				down[k] = append(down[k], d)
				if _, err := waitClean(l.prefix, 10*time.Second); err != nil {
					return fmt.Errorf("AF_XDP star N=%d, %s: %w", n, l.tool, err)
				}
				fmt.Fprintf(os.Stderr, " %.2f/%.2f", up[k][len(up[k])-1], d)
			}
		}
		fmt.Fprintln(os.Stderr)
		fmt.Fprintf(w, "| %d | %.3f | %.3f | %.2f× | %.3f | %.3f | %.3f | %.2f× | %.3f | %.0f MB | %.0f MB |\n", n,
			median(up[0]), median(up[1]), median(up[0])/median(up[1]), median(up[2]),
			median(down[0]), median(down[1]), median(down[0])/median(down[1]), median(down[2]),
			median(rss[0]), median(rss[2]))
	}
	return nil
}

// vswitchdProc reads /proc/PID/NAME of the ovs-vswitchd serving ovsDB().
func vswitchdProc(name string) ([]byte, error) {
	db := ovsDB()
	if db == "" {
		return nil, errors.New("no ovs")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(db), "ovs-vswitchd.pid"))
	if err != nil {
		return nil, err
	}
	return os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/" + name)
}

// vswitchdRSS is the resident memory of the ovs-vswitchd serving ovsDB(),
// in bytes (0 if unknown).
func vswitchdRSS() int64 {
	st, err := vswitchdProc("status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(st), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// vswitchdCPU is the CPU time ovs-vswitchd has used (utime + stime, in
// clock ticks), for its idle cost.
func vswitchdCPU() int64 {
	st, err := vswitchdProc("stat")
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start at ") ".
	i := bytes.LastIndexByte(st, ')')
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// ---------------------------------------------------------------------------
// Data path.

type pathCase struct {
	name, bridge, openflow, portType string
	mtu                              int
}

func (c *config) dataPath(w io.Writer) error {
	cases := []pathCase{
		{name: "direct veth pair", bridge: "veth"},
		{name: "Linux bridge", bridge: "linux"},
		{name: "OVS bridge (standalone, NORMAL), afxdp-nonpmd ports (default)", bridge: "ovs"},
		{name: "OVS bridge, afxdp ports (a PMD thread polls)", bridge: "ovs", portType: "afxdp"},
		{name: "OVS bridge, system (AF_PACKET) ports", bridge: "ovs", portType: "system"},
		{name: "OVS bridge, afxdp-nonpmd ports, MTU 3400", bridge: "ovs", mtu: 3400},
		{name: "OVS bridge, system ports, MTU 9000 (auto picks system above MTU 3506)", bridge: "ovs", mtu: 9000},
		{name: "OVS learning switch (fail-mode secure, openflow: learning-switch), afxdp-nonpmd (default)", bridge: "ovs", openflow: "learning-switch"},
		{name: "OVS learning switch, system ports", bridge: "ovs", openflow: "learning-switch", portType: "system"},
	}
	fmt.Fprintf(w, "\n## Data path\n\nTCP between two namespaces (iperf3 -t %g, one stream, h001 → h002), as netlab builds them (veths on OVS with tx checksum offload off, Linux bridge and direct veth with offloads on); OVS bridges use the `%s` datapath. Idle CPU: what ovs-vswitchd used in the 2 s after the transfer, in %% of one CPU.\n\n", c.iperf.Seconds(), datapathType())
	fmt.Fprintf(w, "| path | Gb/s | retransmits | ovs-vswitchd idle CPU |\n|---|---|---|---|\n")
	for i, pc := range cases {
		file := filepath.Join(c.tmp, fmt.Sprintf("path-%d.yaml", i))
		args := []string{"-n", "2", "-bridge", pc.bridge, "-o", file}
		if pc.openflow != "" {
			args = append(args, "-openflow", pc.openflow)
		}
		if pc.portType != "" {
			args = append(args, "-port-type", pc.portType)
		}
		if pc.mtu != 0 {
			args = append(args, "-mtu", strconv.Itoa(pc.mtu))
		}
		if b, err := exec.Command(c.star, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("star: %v: %s", err, b)
		}
		l := &lab{prefix: newPrefix(), file: file, bridge: pc.bridge, n: 2, tool: toolNetlab}
		if _, _, err := c.up(l); err != nil {
			c.cleanup(l)
			return err
		}
		gbps, retr, err := c.iperf3(l)
		idle := "-"
		if pc.bridge == "ovs" {
			t0 := vswitchdCPU()
			time.Sleep(2 * time.Second)
			idle = fmt.Sprintf("%.0f %%", float64(vswitchdCPU()-t0)/2/float64(clockTicks)*100)
		}
		if derr := c.down(l); derr != nil {
			return fmt.Errorf("data path %s: %w", pc.name, derr)
		}
		if err != nil {
			fmt.Fprintf(w, "| %s | failed: %v | | |\n", pc.name, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %d | %s |\n", pc.name, gbps, retr, idle)
	}
	return nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// iperf3 runs a server in h002, waits until it listens, and runs a client
// in h001. The server is ended by its PID afterwards.
func (c *config) iperf3(l *lab) (float64, int, error) {
	srvNS, cliNS := l.prefix+"h002", l.prefix+"h001"
	dst := "10.77.0.3" // bench/star's address of h002
	srv := exec.Command("ip", "netns", "exec", srvNS, "iperf3", "-s", "-B", dst)
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = srv.Process.Kill() // ip netns exec execs iperf3: this PID is the server
		_ = srv.Wait()
	}()
	for try := 0; ; try++ {
		out, _ := exec.Command("ss", "-N", srvNS, "-Hltn", "sport", "=", ":5201").Output()
		if len(bytes.TrimSpace(out)) > 0 {
			break
		}
		if try == 100 {
			return 0, 0, errors.New("iperf3 server did not listen within 2 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := exec.Command("ip", "netns", "exec", cliNS, "iperf3", "-c", dst, "-t", fmt.Sprint(c.iperf.Seconds()), "-J", "--connect-timeout", "3000").Output()
	var res struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, 0, fmt.Errorf("iperf3: %v: %s", err, out)
	}
	if res.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, res.End.SumSent.Retransmits, nil
}

func datapathType() string {
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return "system"
	}
	return "netdev (userspace)"
}

// ---------------------------------------------------------------------------
// Output.

func printResults(w io.Writer, results []*result) {
	fmt.Fprintf(w, "## Up and down of the star labs\n\n")
	fmt.Fprintf(w, "Seconds, medians. batched = bench/batched.sh, naive = bench/naive.sh (same lab; see bench/lib.sh for what they skip).\n")
	fmt.Fprintf(w, "Ratios are netlab's time over the baseline's: below 1 netlab is faster. RSS: netlab's peak (ru_maxrss over its up, down and children).\n")
	fmt.Fprintf(w, "Naive figures marked ¹ are one run, not a median (-naive-max).\n\n")
	fmt.Fprintf(w, "| bridge | N | netlab up | batched up | naive up | up ÷ batched | up ÷ naive | netlab down | batched down | naive down | down ÷ batched | down ÷ naive | netlab peak RSS |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		nu, bu, vu := median(r.up[toolNetlab]), median(r.up[toolBatched]), median(r.up[toolNaive])
		nd, bd, vd := median(r.down[toolNetlab]), median(r.down[toolBatched]), median(r.down[toolNaive])
		mark := ""
		if len(r.up[toolNaive]) == 1 && len(r.up[toolNetlab]) > 1 {
			mark = "¹"
		}
		fmt.Fprintf(w, "| %s | %d | %.3f | %.3f | %.3f%s | %.2f× | %.2f× | %.3f | %.3f | %.3f%s | %.2f× | %.2f× | %.1f MB |\n",
			r.bridge, r.n, nu, bu, vu, mark, nu/bu, nu/vu, nd, bd, vd, mark, nd/bd, nd/vd, float64(r.rssKB)/1024)
	}
	fmt.Fprintf(w, "\n### Cost per namespace\n\nMilliseconds per namespace (median time ÷ N); flat down a column means linear cost.\n\n")
	fmt.Fprintf(w, "| bridge | N | netlab up | batched up | naive up | netlab down | batched down | naive down |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		per := func(m map[tool][]float64, t tool) float64 { return median(m[t]) / float64(r.n) * 1000 }
		fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r.bridge, r.n,
			per(r.up, toolNetlab), per(r.up, toolBatched), per(r.up, toolNaive),
			per(r.down, toolNetlab), per(r.down, toolBatched), per(r.down, toolNaive))
	}
	fmt.Fprintf(w, "\n### Second up of a converged lab, and teardown tail\n\n")
	for _, r := range results {
		if len(r.second) > 0 {
			fmt.Fprintf(w, "- `netlab up` of the converged %s star, N=%d (observe + empty plan): **%.3f s** (median; runs %s)\n", r.bridge, r.n, median(r.second), list(r.second))
		}
	}
	fmt.Fprintf(w, "- Zero residue was checked after every down (namespaces, links, OVS bridges/ports, nftables tables and journals named with the run's prefix). The kernel finishes deleting namespaces and their veths after the command returns; the longest wait for zero residue after down returned:")
	for _, t := range tools {
		var m float64
		for _, r := range results {
			m = max(m, slices.Max(r.settle[t]))
		}
		fmt.Fprintf(w, " %s %.0f ms;", t, m*1000)
	}
	fmt.Fprintf(w, "\n")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.3f", x))
	}
	return strings.Join(parts, ", ")
}

// ---------------------------------------------------------------------------
// The machine.

func machine() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	ovsVer := firstLine("ovs-vswitchd", "--version")
	ipVer := firstLine("ip", "-V")
	return fmt.Sprintf("%d CPUs (%s), %s memory, kernel %s, %s, %s, %s, Open vSwitch datapath %s.",
		runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), ovsVer, ipVer, runtime.Version(), datapathType())
}

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + " ?"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func (c *config) netlabVersion() string {
	out, err := exec.Command(c.netlab, "version").Output()
	if err != nil {
		return "?"
	}
	// `netlab version` prints "netlab REV"; the header says "netlab" itself.
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "netlab ")
}

// ---------------------------------------------------------------------------

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/netlab-dev/netlab\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the netlab repository")
		}
		dir = parent
	}
}

// loadAvg is /proc/loadavg's first three figures: how busy the machine
// was (other sessions share it).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ") + " (1, 5, 15 min)"
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 60000 {
			return nil, fmt.Errorf("%q: want 1..60000", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
