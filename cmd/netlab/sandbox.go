package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// defaultSandbox is the sandbox of a user who can not use the machine's own
// network stack (no root, no CAP_NET_ADMIN and CAP_SYS_ADMIN).
const defaultSandbox = "default"

// labVerbs are the verbs that act on labs, and so run where the labs live:
// on the machine, or inside a sandbox.
var labVerbs = map[string]bool{"up": true, "down": true, "plan": true, "status": true, "check": true, "flows": true, "impair": true, "exec": true, "graph": true, "capture": true, "logs": true, "ovs": true, "link": true, "partition": true, "heal": true, "timeline": true}

// sandboxFlag takes --sandbox NAME (or --sandbox=NAME) out of the arguments,
// wherever it stands before a "--" (exec's command is the command's own).
// An empty NAME is an error: taken as no --sandbox, it would put the verb
// on the machine.
func sandboxFlag(args []string) (name string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return name, append(rest, args[i:]...), nil
		case a == "--sandbox" || a == "-sandbox":
			if i+1 >= len(args) || args[i+1] == "" {
				return "", nil, fmt.Errorf("--sandbox needs a name")
			}
			name = args[i+1]
			i++
		case strings.HasPrefix(a, "--sandbox=") || strings.HasPrefix(a, "-sandbox="):
			_, name, _ = strings.Cut(a, "=")
			if name == "" {
				return "", nil, fmt.Errorf("--sandbox needs a name")
			}
		default:
			rest = append(rest, a)
		}
	}
	return name, rest, nil
}

// place says where a lab verb runs: "" on this machine's (or this
// sandbox's) own stack, else the name of the sandbox to run it in. Inside a
// sandbox, verbs run right there. A user who can not change the machine's
// network (not root, and without CAP_NET_ADMIN and CAP_SYS_ADMIN) gets their
// sandbox "default"; NETLAB_SANDBOX or --sandbox names another.
func place(explicit string) string {
	switch {
	case sandbox.Inside() != "":
		return ""
	case explicit != "":
		return explicit
	case os.Getenv("NETLAB_SANDBOX") != "":
		return os.Getenv("NETLAB_SANDBOX")
	case !sandbox.Privileged():
		return defaultSandbox
	}
	return ""
}

// enter runs `netlab VERB ARGS` inside the sandbox a.sandbox, with this
// process's standard streams, and returns its exit status. up makes the
// sandbox when it is not there; any other verb given an absent sandbox runs
// in a fresh one that goes with it (what it finds there: nothing). A
// sandbox left without labs afterwards is removed, keeper and all: a
// sandbox lives as long as it holds a lab. A sandbox whose keeper died
// (before or while the verb ran) is said to have, and its entry removed.
func (a *app) enter(verb string, args []string) int {
	reg, err := sandbox.DefaultRegistry(a.root)
	if err != nil {
		return a.fail(verb, err)
	}
	sb, ended, release, err := reg.Use(a.sandbox, verb == "up")
	if ended != nil {
		a.sayEnded(ended, verb)
	}
	if err != nil {
		return a.failSandbox(verb, err)
	}
	exe, err := os.Executable()
	if err != nil {
		release()
		return a.fail(verb, err)
	}
	var code int
	if sb == nil {
		code, err = sandbox.Run(a.sandbox)
	} else {
		code, err = a.runIn(sb, exe, append([]string{verb}, args...), verb == "capture")
	}
	release()
	if err != nil {
		return a.failSandbox(verb, err)
	}
	if sb == nil {
		return code
	}
	if !sb.Alive() {
		return a.endedWhile(reg, sb, verb)
	}
	removed, err := reg.RemoveIfIdle(a.sandbox, a.root)
	if err != nil {
		fmt.Fprintf(a.stderr, "netlab: sandbox %s: %v\n", a.sandbox, err)
	} else if removed && verb == "down" {
		fmt.Fprintf(a.stdout, "sandbox %s: removed (no lab left in it)\n", a.sandbox)
	}
	return code
}

// sayEnded says what Use found of an earlier sandbox and removed: one whose
// keeper had died took its labs with it, which the verb (status: "no labs
// running") could not tell.
func (a *app) sayEnded(sb *sandbox.Sandbox, verb string) {
	if sb.Incomplete != "" {
		fmt.Fprintf(a.stderr, "netlab: sandbox %s: %s; removed what was left of it\n", sb.Name, sb.Incomplete)
	} else {
		fmt.Fprintf(a.stderr, "netlab: sandbox %s: its keeper (pid %d, made %s) had died, and every lab in it went with it; its entry is removed\n",
			sb.Name, sb.PID, sb.Created.Format("2006-01-02 15:04:05Z"))
	}
	if verb == "up" {
		fmt.Fprintf(a.stderr, "netlab: sandbox %s: making a fresh one\n", sb.Name)
	}
}

// endedWhile reports a sandbox that ended while a verb ran in it: its
// keeper died (or `netlab sandbox rm` removed it), and the kernel killed
// every process inside, the verb's own, which had no word to say. The dead
// entry is removed (RemoveIfIdle removes a dead keeper's).
func (a *app) endedWhile(reg *sandbox.Registry, sb *sandbox.Sandbox, verb string) int {
	now, err := reg.Get(sb.Name)
	if err == nil && (now == nil || now.PID != sb.PID) {
		fmt.Fprintf(a.stderr, "netlab: %s: sandbox %s ended while it ran, and its entry is gone (netlab sandbox rm, or another netlab found its keeper dead): every process and lab in it ended\n", verb, sb.Name)
	} else {
		fmt.Fprintf(a.stderr, "netlab: %s: sandbox %s ended while it ran: its keeper (pid %d) died, and every process and lab in it with it\n", verb, sb.Name, sb.PID)
		if _, err := reg.RemoveIfIdle(sb.Name, a.root); err != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox %s: %v\n", sb.Name, err)
		}
	}
	if verb == "up" {
		fmt.Fprintf(a.stderr, "netlab: run the same netlab up again: it makes a fresh sandbox %s\n", sb.Name)
	}
	return exitRuntime
}

// runIn runs exe with args inside the sandbox and returns its status. The
// terminal's Ctrl-C reaches the command itself (it is in the same process
// group): this process only waits for it. endsWithUs makes the command get
// SIGTERM when this process dies (capture: its file is then complete).
func (a *app) runIn(sb *sandbox.Sandbox, exe string, args []string, endsWithUs bool) (int, error) {
	cmd, err := sb.Command(exe, args...)
	if err != nil {
		return 0, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, a.stdout, a.stderr
	if endsWithUs {
		// A SIGTERM that ends this process then ends nsenter too (which
		// forwards no signal), and the command inside sees it and stops.
		// Pdeathsig follows the forking thread, so hold it until the
		// command ends.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	}
	// nsenter and this process ignore the terminal's Ctrl-C and Ctrl-\
	// (the command inside gets them too, being in the same process group),
	// or nsenter would end at once and leave the command behind; an
	// ignored signal stays ignored through exec, so the netlab inside is
	// told which to give back their default action for what it starts.
	cmd.Env = append(cmd.Env, sandbox.SignalDefaults(syscall.SIGINT, syscall.SIGQUIT))
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Reset(syscall.SIGINT, syscall.SIGQUIT)
	err = cmd.Run()
	if cmd.ProcessState == nil {
		return 0, fmt.Errorf("sandbox %s: %w", sb.Name, err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// failSandbox reports a sandbox that could not be made or entered, with
// what the kernel settings say about why.
func (a *app) failSandbox(verb string, err error) int {
	fmt.Fprintf(a.stderr, "netlab: %s: %v\n", verb, err)
	if why := sandbox.Diagnose(err); why != "" {
		fmt.Fprintf(a.stderr, "netlab: %s\n", why)
	}
	fmt.Fprintln(a.stderr, "netlab: `netlab doctor` checks what sandboxes need")
	return exitRuntime
}

// sandboxUsage is the usage of netlab sandbox.
const sandboxUsage = `Usage: netlab sandbox ls [--json]
       netlab sandbox rm NAME...|--all
       netlab sandbox create NAME
       netlab sandbox exec NAME [--] CMD [ARGS...]
       netlab sandbox run ` + sandboxRunArgsUsage

// sandboxVerb: netlab sandbox ls [--json] | rm NAME...|--all | create NAME
// | exec NAME -- CMD... | run [--name N] [--keep] -- CMD... Every shape is
// checked before the registry is looked at; ls, and rm or exec of what is
// not there, write nothing.
func (a *app) sandboxVerb(args []string) int {
	usage := func() int {
		fmt.Fprintln(a.stderr, sandboxUsage)
		return exitUsage
	}
	if len(args) == 0 {
		return usage()
	}
	if wantsHelp(args) {
		usage()
		return exitOK
	}
	switch args[0] {
	case "ls", "list":
		fs := a.flags("sandbox ls", "[--json]")
		asJSON := fs.Bool("json", false, "print the sandboxes as JSON")
		if _, code, ok := positional(fs, args[1:], 0, 0); !ok {
			return code
		}
		reg, err := sandbox.DefaultRegistry(a.root)
		if err != nil {
			return a.fail("sandbox ls", err)
		}
		return a.sandboxList(reg, *asJSON)
	case "create":
		if wantsHelp(args[1:]) {
			usage()
			return exitOK
		}
		if len(args) != 2 {
			return usage()
		}
		if err := sandbox.CheckName(args[1]); err != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox create: %v\n", err)
			return exitUsage
		}
		reg, err := sandbox.DefaultRegistry(a.root)
		if err != nil {
			return a.fail("sandbox create", err)
		}
		sb, err := reg.Create(args[1])
		if err != nil {
			return a.failSandbox("sandbox create", err)
		}
		fmt.Fprintf(a.stdout, "sandbox %s: created (keeper %d); it stays until netlab sandbox rm %s\n", sb.Name, sb.PID, sb.Name)
		return exitOK
	case "exec":
		// netlab sandbox exec NAME -- CMD: a command in the sandbox's own
		// network namespace (its host), as root of the sandbox.
		if wantsHelp(args[1:]) {
			usage()
			return exitOK
		}
		name, cmd, ok := sandboxExecArgs(args[1:])
		if !ok {
			return usage()
		}
		if err := sandbox.CheckName(name); err != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox exec: %v\n", err)
			return exitUsage
		}
		reg, err := sandbox.DefaultRegistry(a.root)
		if err != nil {
			return a.fail("sandbox exec", err)
		}
		sb, err := reg.Get(name)
		if err == nil && (sb == nil || !sb.Alive()) {
			err = fmt.Errorf("no sandbox %s running (netlab sandbox ls)", name)
		}
		if err != nil {
			return a.fail("sandbox exec", err)
		}
		path, _, err := resolveCommand(cmd[0])
		if err != nil {
			return a.fail("sandbox exec", fmt.Errorf("%s: %w", cmd[0], err))
		}
		exe, err := os.Executable()
		if err != nil {
			return a.fail("sandbox exec", err)
		}
		var fwd forwarder
		fwd.forwarding = sandbox.ForwardSignals(fwd.signal)
		code, err := a.runRelayed(sb, exe, path, cmd, &fwd)
		fwd.forwarding.Stop()
		if err != nil {
			return a.fail("sandbox exec", err)
		}
		return code
	case "run":
		return a.sandboxRun(args[1:])
	case "rm", "remove":
		return a.sandboxRemove(args[1:])
	}
	return usage()
}

// sandboxExecArgs splits the arguments of netlab sandbox exec: NAME [--]
// CMD [ARGS...]. ok is false when the name or the command is missing.
func sandboxExecArgs(args []string) (name string, cmd []string, ok bool) {
	if len(args) < 2 {
		return "", nil, false
	}
	name, cmd = args[0], args[1:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	return name, cmd, len(cmd) > 0
}

// sandboxRemove: netlab sandbox rm NAME...|--all. What is incomplete (a
// making cut short) goes too.
func (a *app) sandboxRemove(args []string) int {
	fs := a.flags("sandbox rm", "NAME...|--all")
	all := fs.Bool("all", false, "remove every sandbox of this user")
	names, code, ok := positional(fs, args, 0, -1)
	if !ok {
		return code
	}
	if *all == (len(names) > 0) {
		fs.Usage()
		return exitUsage
	}
	for _, name := range names {
		if err := sandbox.CheckName(name); err != nil {
			fmt.Fprintf(a.stderr, "netlab: sandbox rm: %v\n", err)
			return exitUsage
		}
	}
	reg, err := sandbox.DefaultRegistry(a.root)
	if err != nil {
		return a.fail("sandbox rm", err)
	}
	if *all {
		list, err := reg.List()
		if err != nil {
			return a.fail("sandbox rm", err)
		}
		for _, sb := range list {
			names = append(names, sb.Name)
		}
	}
	code = exitOK
	for _, name := range names {
		sb, err := reg.Get(name)
		if err == nil && sb == nil {
			fmt.Fprintf(a.stdout, "sandbox %s: not there\n", name)
			continue
		}
		// Alive before the removal, which kills the keeper.
		alive := err == nil && sb.Alive()
		if err == nil {
			err = reg.Remove(name)
		}
		if err != nil {
			code = a.fail("sandbox rm "+name, err)
			continue
		}
		switch {
		case sb.Incomplete != "":
			fmt.Fprintf(a.stdout, "sandbox %s: removed (it was incomplete: %s)\n", name, sb.Incomplete)
		case !alive:
			fmt.Fprintf(a.stdout, "sandbox %s: removed (its keeper %d had died)\n", name, sb.PID)
		default:
			fmt.Fprintf(a.stdout, "sandbox %s: removed\n", name)
		}
	}
	return code
}

// sandboxRow is one sandbox in `netlab sandbox ls --json`.
type sandboxRow struct {
	*sandbox.Sandbox
	Alive bool     `json:"alive"`
	Labs  []string `json:"labs"`
}

func (a *app) sandboxList(reg *sandbox.Registry, asJSON bool) int {
	list, err := reg.List()
	if err != nil {
		return a.fail("sandbox ls", err)
	}
	rows := []sandboxRow{}
	for _, sb := range list {
		r := sandboxRow{Sandbox: sb, Alive: sb.Alive(), Labs: []string{}}
		if r.Alive {
			if labs, err := sb.Labs(a.root); err == nil && labs != nil {
				r.Labs = labs
			}
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return a.fail("sandbox ls", err)
		}
		return exitOK
	}
	if len(rows) == 0 {
		fmt.Fprintln(a.stdout, "no sandboxes")
		return exitOK
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tKEEPER\tLABS\tCREATED")
	for _, r := range rows {
		kind := "root"
		if r.UserNS {
			kind = "rootless"
		}
		keeper := strconv.Itoa(r.PID)
		created := r.Created.Format("2006-01-02 15:04:05Z")
		switch {
		case r.Incomplete != "":
			kind, keeper, created = "-", fmt.Sprintf("- (incomplete: %s; netlab sandbox rm %s removes it)", r.Incomplete, r.Name), "-"
		case !r.Alive:
			keeper += fmt.Sprintf(" (dead: its labs went with it; netlab sandbox rm %s)", r.Name)
		}
		labs := strings.Join(r.Labs, ",")
		if labs == "" {
			labs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, kind, keeper, labs, created)
	}
	tw.Flush()
	return exitOK
}
