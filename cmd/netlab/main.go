// Command netlab builds small virtual networks (network namespaces, veth pairs,
// Open vSwitch and Linux bridges, addresses, routes, sysctls) from a YAML file
// and takes them down again. One file per verb; this one dispatches.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2 // usage error or invalid topology
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `netlab builds virtual networks from a YAML file and takes them down again.

Usage:
  netlab up FILE              make the machine match FILE (idempotent)
  netlab down NAME|FILE|--all remove everything of the lab (no file needed)
  netlab plan FILE [--json]   print what up would do, change nothing
  netlab status [NAME] [--json]
                              show labs, their objects and drift from their file
  netlab validate FILE...     check files, report every error with file:line:col
  netlab check LAB|FILE [--json]
                              run the file's expect: entries; exit 1 on a failure
  netlab graph FILE|LAB [--format dot|mermaid|svg|png] [-o FILE]
                              draw the lab
  netlab flows LAB [BRIDGE] [--json]
                              OpenFlow tables and the learned MAC table
  netlab impair LAB NS/IFACE [--rate R] [--loss P] [--delay D] ... | --clear | --reset
                              change an interface's impairments at run time
  netlab link LAB NS/IFACE down|up|--reset
                              pull an interface's cable (it sees no carrier), or plug it back
  netlab partition LAB A[,B...] / C[,D...] [--oneway] [--name N]
                              drop the traffic between two groups of namespaces
  netlab heal LAB [NAME...]   lift partitions (all without a name)
  netlab timeline LAB [status|start NAME...|stop [NAME...] [--reset]|log NAME]
                              run the file's timelines of events (flaps, partitions,
                              impairments at set times); where they are
  netlab exec LAB NS -- CMD...
                              run a command inside a namespace of the lab
  netlab logs LAB [NS[/SERVICE]] [-f]
                              print (and follow) the logs of the lab's services
  netlab ovs LAB -- ovs-ofctl|ovs-vsctl|ovs-appctl ARGS...
                              run an Open vSwitch tool against the lab's Open vSwitch
  netlab capture LAB NS/IFACE... [-w FILE|-] [--count N] [--duration D] [FILTER]
                              record packets of lab interfaces (pcapng, pcap, or one line each)
  netlab doctor               check what netlab needs, say how to fix what is missing
  netlab sandbox ls|rm|create|exec
                              list, remove, make or enter sandboxes (networks of their own)
  netlab sandbox run [--name N] [--keep] -- CMD [ARGS...]
                              run a command (a test suite) in a fresh sandbox, removed after it
  netlab tap-mac IFACE MAC    set a TAP's MAC as its unprivileged owner
  netlab completion bash|zsh  print a shell completion script
  netlab version

Run 'netlab VERB -h' (or 'netlab help VERB') for the flags of a verb.

A file with machines: spans machines: up, plan, check and status act on this
machine's part (--machine NAME, or the machine whose address is here).

Where labs live: as root (or a process root gave CAP_NET_ADMIN and
CAP_SYS_ADMIN; file capabilities are shed for users), on this machine's own
network stack. Any other user's labs live in their sandbox
"default": a user, network, mount and PID namespace of their own, made by the
first up and removed with its last lab. --sandbox NAME (before or after the
verb; or NETLAB_SANDBOX=NAME) puts a lab verb in the sandbox NAME instead, as
root too: a network of its own, apart from the machine's and other
sandboxes'.
`

// app carries what every verb needs: output streams and engine options.
type app struct {
	stdout, stderr io.Writer
	root           string // --root / NETLAB_ROOT: where journals live (tests)
	// sandbox is the sandbox the lab verb runs in ("" this machine's, or
	// this sandbox's, own network stack): see place.
	sandbox string
}

func (a *app) engine(log io.Writer, extra ...engine.Option) *engine.Engine {
	if log == nil {
		log = io.Discard
	}
	opts := append([]engine.Option{engine.WithLog(log)}, extra...)
	if a.root != "" {
		opts = append(opts, engine.WithRoot(a.root))
	}
	return engine.New(append(opts, testHooks(a.stderr)...)...)
}

// testHooks are the switches the e2e suites give the netlab binary, as
// engine options; nothing else reads them.
//   - NETLAB_CRASH_AFTER=K: up ends the process right after its K-th action,
//     as abruptly as kill -9 (no deferred cleanup, no journal save), for the
//     crash suites.
//   - NETLAB_TEST_XDP_MODE=M: AF_XDP ports get options:xdp-mode=M; a mode
//     Open vSwitch rejects makes every AF_XDP port fail to open, so a test
//     can watch up fall back to system ports.
//   - NETLAB_PARALLEL=N: N actions of a step at once instead of the
//     default, for the benchmark's measurements of it.
func testHooks(stderr io.Writer) []engine.Option {
	var opts []engine.Option
	if k, err := strconv.Atoi(os.Getenv("NETLAB_CRASH_AFTER")); err == nil && k > 0 {
		opts = append(opts, engine.WithAfterAction(func(done int) {
			if done == k {
				fmt.Fprintf(stderr, "netlab: NETLAB_CRASH_AFTER=%d: exiting abruptly\n", k)
				os.Exit(99)
			}
		}))
	}
	if m := os.Getenv("NETLAB_TEST_XDP_MODE"); m != "" {
		opts = append(opts, engine.WithOVS(ovs.WithXDPMode(m)))
	}
	if n, err := strconv.Atoi(os.Getenv("NETLAB_PARALLEL")); err == nil && n > 0 {
		opts = append(opts, engine.WithParallel(n))
	}
	return opts
}

func main() {
	if err := shedPrivileges(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "netlab: %v\n", err)
		os.Exit(exitRuntime)
	}
	a := &app{stdout: os.Stdout, stderr: os.Stderr, root: os.Getenv("NETLAB_ROOT")}
	stop := startProfiles(os.Stderr)
	code := a.run(os.Args[1:])
	stop()
	os.Exit(code)
}

func (a *app) run(args []string) int {
	if err := sandbox.VerifyInside(); err != nil {
		fmt.Fprintf(a.stderr, "netlab: %v\n", err)
		return exitRuntime
	}
	explicit, args, err := front(args)
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: %v\n", err)
		return exitUsage
	}
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	if labVerbs[verb] || verb == "validate" {
		// Each lab verb checks its arguments before it enters the sandbox
		// (enter): a usage error never makes or enters one.
		a.sandbox = place(explicit)
		if err := sandbox.CheckName(a.sandbox); a.sandbox != "" && err != nil {
			fmt.Fprintf(a.stderr, "netlab: NETLAB_SANDBOX: %v\n", err)
			return exitUsage
		}
	}
	switch verb {
	case "up":
		return a.up(rest)
	case "down":
		return a.down(rest)
	case "plan":
		return a.plan(rest)
	case "status":
		return a.status(rest)
	case "validate":
		return a.validate(rest)
	case "exec":
		return a.exec(rest)
	case "ovs":
		return a.ovsVerb(rest)
	case "capture":
		return a.capture(rest)
	case "logs":
		return a.logs(rest)
	case "flows":
		return a.flows(rest)
	case "impair":
		return a.impair(rest)
	case "link":
		return a.link(rest)
	case "partition":
		return a.partition(rest)
	case "heal":
		return a.heal(rest)
	case "timeline":
		return a.timelineVerb(rest)
	case "timeline-run":
		return a.timelineRun(rest)
	case "check":
		return a.check(rest)
	case "graph":
		return a.graph(rest)
	case "sandbox":
		return a.sandboxVerb(rest)
	case "reflect":
		return a.reflect(rest)
	case "emulate":
		return a.emulate(rest)
	case "supervise":
		return a.supervise(rest)
	case "view-exec":
		return a.viewExec(rest)
	case "relay":
		return a.relay(rest)
	case "tap-mac":
		return a.tapMAC(rest)
	case "doctor":
		return a.doctor(rest)
	case "completion":
		return a.completion(rest)
	case "version", "--version", "-version":
		if len(rest) > 0 {
			fmt.Fprintln(a.stderr, "Usage: netlab version")
			return exitUsage
		}
		fmt.Fprintf(a.stdout, "netlab %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		return a.help(rest)
	}
	fmt.Fprintf(a.stderr, "netlab: unknown verb %q\n\n%s", verb, usage)
	return exitUsage
}

// front takes what comes before a verb's own arguments: --sandbox NAME
// (anywhere before a "--"), checked, and only for the verbs that run where
// labs live. It touches nothing: a function of the arguments alone.
func front(args []string) (explicit string, rest []string, err error) {
	explicit, rest, err = sandboxFlag(args)
	if err != nil {
		return "", nil, err
	}
	if explicit == "" {
		return "", rest, nil
	}
	if err := sandbox.CheckName(explicit); err != nil {
		return "", nil, fmt.Errorf("--sandbox: %w", err)
	}
	if len(rest) > 0 && !labVerbs[rest[0]] && rest[0] != "validate" {
		// Taken silently it would be a surprise: `netlab --sandbox x
		// sandbox rm` removes nothing of x's.
		return "", nil, fmt.Errorf("--sandbox goes with a lab verb (up, down, plan, status, check, flows, impair, link, partition, heal, timeline, exec, ovs, graph, capture, validate), not %q", rest[0])
	}
	return explicit, rest, nil
}

// help: netlab help [VERB] prints the usage, or the verb's (as VERB -h).
func (a *app) help(args []string) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(a.stdout, usage)
		return exitOK
	case len(args) == 1 && knownVerb(args[0]) && args[0] != "help":
		return a.run([]string{args[0], "-h"})
	}
	fmt.Fprintln(a.stderr, "Usage: netlab help [VERB]")
	return exitUsage
}

// knownVerb says whether verb is one of netlab's.
func knownVerb(verb string) bool {
	switch verb {
	case "sandbox", "reflect", "emulate", "supervise", "view-exec", "relay", "timeline-run", "tap-mac", "doctor", "completion", "version", "help", "validate":
		return true
	}
	return labVerbs[verb]
}

// flags returns a flag set that reports errors to stderr and exits 2.
func (a *app) flags(verb, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "Usage: netlab %s %s\n", verb, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// prefixFlag adds --prefix to a verb that takes a topology file.
func prefixFlag(fs *flag.FlagSet) *string {
	return fs.String("prefix", "", "prefix for every machine-wide name of the lab (lab, namespaces, bridges, host interfaces), so copies of one file can run side by side")
}

// positional is a verb's prologue: its flags parsed (they may stand among
// the other arguments), then the count of the others checked against min
// and max (max < 0: no limit). When ok is false the usage (or the flag
// error) has been printed and code is the exit status: 0 for -h/--help,
// 2 otherwise.
func positional(fs *flag.FlagSet, args []string, min, max int) (pos []string, code int, ok bool) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, flagExit(err), false
	}
	if len(pos) < min || max >= 0 && len(pos) > max {
		fs.Usage()
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// flagExit is a verb's exit code after its flags failed to parse: -h and
// --help asked for the usage, which flag printed (0); anything else is a
// usage error (2).
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// wantsHelp says whether a verb without flags of its own was asked for its
// usage.
func wantsHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help")
}

// parse parses flags that may come before or after the positional arguments
// (netlab plan FILE --json and netlab plan --json FILE both work). A "--"
// ends the flags: everything after it is positional, even words that start
// with "-". It touches nothing but the flag set.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		// The flag package takes a "--" right after a flag that wants a
		// value as that value, and then no "--" ends the flags where the
		// user meant one: refused, so a "--" always ends the flags.
		var dashValue error
		fs.Visit(func(f *flag.Flag) {
			if dashValue == nil && f.Value.String() == "--" {
				dashValue = fmt.Errorf("flag -%s needs a value (a -- ends the flags)", f.Name)
			}
		})
		if dashValue != nil {
			fmt.Fprintln(fs.Output(), dashValue)
			fs.Usage()
			return nil, dashValue
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// loadLab loads and validates a topology; on failure it prints every error
// and returns the exit code.
func (a *app) loadLab(path, prefix string) (*topology.Lab, int) {
	lab, err := topology.Load(path)
	if err == nil {
		err = topology.ApplyPrefix(lab, prefix)
	}
	if err != nil {
		var list topology.ErrorList
		var one *topology.Error
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(a.stderr, e)
			}
		} else if errors.As(err, &one) {
			fmt.Fprintln(a.stderr, one)
		} else {
			fmt.Fprintf(a.stderr, "netlab: %v\n", err)
		}
		return nil, exitUsage
	}
	return lab, exitOK
}

// fail prints a runtime error with a hint for the classic permission trap.
func (a *app) fail(context string, err error) int {
	var list topology.ErrorList
	if errors.As(err, &list) {
		// Clashes with objects that are not the lab's, or settings this
		// machine cannot give (an AF_XDP port type, an offline CPU): the
		// file cannot be brought up here as it stands, like an invalid
		// file.
		fmt.Fprintf(a.stderr, "netlab: %s: the file cannot be brought up on this machine as it stands:\n", context)
		for _, e := range list {
			fmt.Fprintln(a.stderr, e)
		}
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "netlab: %s: %v\n", context, err)
	if (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)) && sandbox.Inside() != "" {
		fmt.Fprintf(a.stderr, "netlab: permission denied in sandbox %s: the kernel keeps this for the machine's root (a setting that is not per network namespace, or a device this user may not open); `netlab doctor` says what sandboxes can do here\n", sandbox.Inside())
		return exitRuntime
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		fmt.Fprintln(a.stderr, "netlab: permission denied: netlab needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN given to the process by root); `netlab doctor` says what is missing and why")
	}
	return exitRuntime
}

// machineFlag adds --machine to a verb that acts on one machine's part of
// a multi-machine lab.
func machineFlag(fs *flag.FlagSet) *string {
	return fs.String("machine", "", "the machine (of the file's machines:) whose part to act on; default: the one whose address is on this machine")
}

// part returns the part of the lab this machine brings up (see
// engine.Part), having printed why when it fails.
func (a *app) part(verb string, lab *topology.Lab, machine string) (*topology.Lab, string, int) {
	part, how, err := engine.Part(lab, machine)
	if err != nil {
		var list topology.ErrorList
		if errors.As(err, &list) {
			return nil, "", a.fail(verb, err)
		}
		fmt.Fprintf(a.stderr, "netlab: %s: %v\n", verb, err)
		return nil, "", exitRuntime
	}
	return part, how, exitOK
}

// labPart is labOrFile for the verbs that act on this machine's part of a
// lab: a file's part for machine (or the one found here), a running lab's
// part as its journal says.
func (a *app) labPart(verb, arg, prefix, machine string) (*topology.Lab, int) {
	if !isFileArg(arg) {
		name, code := a.labName(arg, prefix)
		if name == "" {
			return nil, code
		}
		lab, err := a.engine(nil).LabPart(name)
		if err != nil {
			return nil, a.fail(verb, err)
		}
		return lab, exitOK
	}
	lab, code := a.loadLab(arg, prefix)
	if lab == nil {
		return nil, code
	}
	part, _, code := a.part(verb, lab, machine)
	return part, code
}

// labOrFile resolves a LAB|FILE argument to a topology: a file is loaded
// (with the prefix); a running lab's file comes from its journal. On failure
// it has printed why and returns the exit code.
func (a *app) labOrFile(verb, arg, prefix string) (*topology.Lab, int) {
	if isFileArg(arg) {
		return a.loadLab(arg, prefix)
	}
	name, code := a.labName(arg, prefix)
	if name == "" {
		return nil, code
	}
	lab, err := a.engine(nil).LabFile(name)
	if err != nil {
		return nil, a.fail(verb, err)
	}
	return lab, exitOK
}
