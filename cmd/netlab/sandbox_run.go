package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// Exit codes of sandbox run besides the command's own, as env(1),
// timeout(1) and docker run have them: the command's status is the
// caller's to read, so netlab's own failures take codes a command seldom
// uses.
const (
	exitRunFailed  = 125 // the sandbox could not be made or entered
	exitCannotExec = 126 // the command is there but cannot be run
	exitNotFound   = 127 // no such command
)

// runOptions are the flags of netlab sandbox run.
type runOptions struct {
	name     string
	keep     bool
	keepLabs bool
}

const sandboxRunArgsUsage = "[--name N] [--keep|--keep-labs] [--] CMD [ARGS...]"

// sandboxRunArgs reads the arguments of netlab sandbox run: its flags end
// at the command (the first word that is not one of them) or at a "--";
// everything after is the command's own, its -h and --name included. err is
// a usage error (flag.ErrHelp for -h), already said on fs's output.
func sandboxRunArgs(fs *flag.FlagSet, args []string) (runOptions, []string, error) {
	var o runOptions
	fs.StringVar(&o.name, "name", "", "the sandbox's name (default run-XXXXXX, random); there must be no sandbox of that name")
	fs.BoolVar(&o.keep, "keep", false, "keep the sandbox when the command ends, and say how to enter and remove it")
	fs.BoolVar(&o.keepLabs, "keep-labs", false, "keep the sandbox only if the command left labs in it (the Go fixture's NETLAB_KEEP)")
	if err := fs.Parse(args); err != nil {
		return o, nil, err
	}
	usage := func(why string) (runOptions, []string, error) {
		fmt.Fprintf(fs.Output(), "netlab: sandbox run: %s\n", why)
		fs.Usage()
		return o, nil, errors.New(why)
	}
	cmd := fs.Args()
	named := false
	fs.Visit(func(f *flag.Flag) { named = named || f.Name == "name" })
	switch {
	case named && o.name == "":
		return usage("--name needs a name")
	case o.name == "--":
		return usage("flag -name needs a value (a -- ends the flags)")
	case o.name != "" && sandbox.CheckName(o.name) != nil:
		return usage(sandbox.CheckName(o.name).Error())
	case o.keep && o.keepLabs:
		return usage("--keep and --keep-labs: one or the other")
	case len(cmd) == 0:
		return usage("no command")
	case cmd[0] == "":
		return usage("an empty command name")
	}
	return o, cmd, nil
}

// sandboxRun: netlab sandbox run [--name N] [--keep|--keep-labs] [--] CMD
// [ARGS...] runs CMD in a fresh sandbox of its own, as the caller (root of
// the sandbox's user namespace when the caller is not root), with its
// arguments, environment, working directory and standard streams, passing
// on SIGTERM, SIGHUP and (when they did not come from the terminal, which
// sent them to CMD too) SIGINT and SIGQUIT, and exits with CMD's status
// (128+N when signal N ended it). netlab run by CMD acts in that sandbox:
// its labs are the sandbox's. When CMD ends, the sandbox goes with
// everything in it: labs, Open vSwitch, any process CMD left; --keep keeps
// it, --keep-labs keeps it when CMD left labs. A test suite in any language
// runs rootless this way.
func (a *app) sandboxRun(args []string) int {
	fs := a.flags("sandbox run", sandboxRunArgsUsage)
	o, argv, err := sandboxRunArgs(fs, args)
	if err != nil {
		return flagExit(err)
	}
	path, code, err := resolveCommand(argv[0])
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: %s: %v\n", argv[0], err)
		return code
	}
	name := o.name
	if name == "" {
		name = sandbox.NewName("run-")
	}
	reg, err := sandbox.DefaultRegistry(a.root)
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: %v\n", err)
		return exitRunFailed
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: %v\n", err)
		return exitRunFailed
	}
	// Signals that come while the sandbox is made are passed on once the
	// command runs: a SIGTERM then ends it at once.
	var fwd forwarder
	fwd.forwarding = sandbox.ForwardSignals(fwd.signal)
	defer fwd.forwarding.Stop()
	// Unless kept, the sandbox dies with this thread (parent-death signal
	// on its keeper): with netlab killed, nothing of it stays.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sb, release, err := reg.Fresh(name, o.keep, !o.keep)
	var exists *sandbox.ExistsError
	if errors.As(err, &exists) {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: %v: sandbox run makes a fresh one (netlab sandbox exec %s -- CMD runs a command in it; netlab sandbox rm %s removes it)\n", err, name, name)
		return exitRunFailed
	}
	if err != nil {
		a.failSandbox("sandbox run", err)
		return exitRunFailed
	}
	code, err = a.runRelayed(sb, exe, path, argv, &fwd)
	fwd.forwarding.Stop()
	release()
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: %v\n", err)
		code = exitRunFailed
	}
	if !sb.Alive() {
		fmt.Fprintf(a.stderr, "netlab: sandbox run: sandbox %s ended while %s ran (its keeper %d died, or netlab sandbox rm removed it): every process in it ended\n", name, argv[0], sb.PID)
		if rerr := reg.Remove(name); rerr != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox run: %v\n", rerr)
		}
		return code
	}
	switch {
	case o.keep:
		a.sayKept(sb, name, "--keep")
	case o.keepLabs:
		removed, rerr := reg.RemoveIfIdle(name, a.root)
		if rerr != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox run: %v\n", rerr)
		} else if !removed {
			a.sayKept(sb, name, "--keep-labs: "+argv[0]+" left labs in it")
		}
	default:
		if rerr := reg.Remove(name); rerr != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox run: remove sandbox %s: %v (netlab sandbox rm %s)\n", name, rerr, name)
		}
	}
	return code
}

// sayKept says how to use and remove a sandbox that sandbox run keeps.
func (a *app) sayKept(sb *sandbox.Sandbox, name, why string) {
	labs := "none"
	if l, err := sb.Labs(a.root); err == nil && len(l) > 0 {
		labs = strings.Join(l, ", ")
	}
	fmt.Fprintf(a.stderr, "netlab: sandbox %s kept (%s); labs: %s\n  status: netlab --sandbox %s status\n  shell:  netlab sandbox exec %s -- bash\n  remove: netlab sandbox rm %s\n",
		name, why, labs, name, name, name)
}

// runRelayed runs path with argv inside sb through a relay (sandbox.Relay: the
// command's exact status, signals passed on by fwd) and returns its
// status. exe is this program, whose `relay` verb is the inside half.
func (a *app) runRelayed(sb *sandbox.Sandbox, exe, path string, argv []string, fwd *forwarder) (int, error) {
	r, err := sb.Relay([]string{exe, "relay"}, path, argv)
	if err != nil {
		return 0, err
	}
	r.Cmd.Stdin, r.Cmd.Stdout, r.Cmd.Stderr = os.Stdin, a.stdout, a.stderr
	if err := fwd.start(r); err != nil {
		return 0, fmt.Errorf("sandbox %s: %w", sb.Name, err)
	}
	return r.Wait()
}

// forwarder passes signals on to a relayed command, holding those that come
// before it starts.
type forwarder struct {
	forwarding *sandbox.Forwarding // the signals caught
	mu         sync.Mutex
	relay      *sandbox.Relay
	pending    []syscall.Signal
}

func (f *forwarder) signal(sig syscall.Signal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.relay == nil {
		f.pending = append(f.pending, sig)
		return
	}
	f.relay.Signal(sig)
}

// start starts the relay and passes on what came before.
func (f *forwarder) start(r *sandbox.Relay) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.forwarding.Start(r.Start); err != nil {
		return err
	}
	f.relay = r
	for _, sig := range f.pending {
		r.Signal(sig)
	}
	f.pending = nil
	return nil
}

// resolveCommand finds the program a command names, as a shell would: a
// name with a slash is that file, any other is looked up on PATH (an entry
// "." included). code is the shell's status for a command that cannot run:
// 127 when there is no such program, 126 when it is not executable.
func resolveCommand(name string) (path string, code int, err error) {
	path, err = exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	switch {
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return "", exitNotFound, errors.New("not found")
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", exitCannotExec, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", exitCannotExec, err
	}
	return abs, 0, nil
}

// relay: netlab relay -- PATH ARGV0 [ARGS...] is the inside half of
// sandbox run and sandbox exec (sandbox.RelayInside): started by nsenter in
// the sandbox, it runs the command and reports how it ended. Not for
// direct use.
func (a *app) relay(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) < 2 || args[0] == "" || !sandbox.Relayed() {
		fmt.Fprintln(a.stderr, "Usage: netlab relay -- PATH ARGV0 [ARGS...]   (not for direct use: the inside half of netlab sandbox run and sandbox exec, started by nsenter in the sandbox)")
		return exitUsage
	}
	return sandbox.RelayInside(args[0], args[1:])
}
