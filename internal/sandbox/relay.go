package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// A relay runs a command inside a named sandbox and gives its caller what
// running it directly would: its exit status exactly (128+N for a death by
// signal N, as a shell reports it) and the signals the caller passes on.
//
// nsenter joins the sandbox's namespaces; with --pid it forks, and its
// parent, outside, waits for the child. That parent is of no help here: it
// forwards no signal, a terminal's Ctrl-C kills it at once (while the
// command inside may still be cleaning up, and its child is left to the
// machine's init to reap), and when it ignores SIGINT it reports a death
// by SIGINT as exit 1. So nsenter starts this program's relay half
// (`netlab relay`), which runs the command as its own child, waits for it
// and writes how it ended on a pipe to the caller; the caller writes the
// signals to pass on on a second pipe. nsenter is started with SIGINT and
// SIGQUIT ignored (Forwarding.Start), the command gets them back; and
// whatever becomes of nsenter's parent, the caller reads the command's
// status.
//
//	netlab ──nsenter──▶ netlab relay ──fork/exec──▶ CMD
//	   ▲  status pipe (fd 3) ◀──┘ ▲
//	   └─▶ control pipe (fd 4) ───┘
type Relay struct {
	// Cmd is nsenter; set its standard streams before Start.
	Cmd *exec.Cmd

	status, statusW   *os.File
	control, controlR *os.File
	report            chan string
	mu                sync.Mutex
}

// The descriptors of a relay's inside half, and the variable that says it
// was started as one.
const (
	relayStatusFD  = 3
	relayControlFD = 4
	envRelay       = "NETLAB_SANDBOX_RELAY"
)

// Relay returns a relay that runs the program path with argv (argv[0] its
// name) inside the sandbox, in the current directory, with this process's
// environment; helper is how this program is started as the inside half
// (for netlab: its path and "relay"), and RelayInside does that half's
// work. Equivalent to:
//
//	nsenter --target KEEPER --net --mount --pid [--user --preserve-credentials] --wd=$PWD -- netlab relay -- PATH ARGV...
func (s *Sandbox) Relay(helper []string, path string, argv []string) (*Relay, error) {
	if len(helper) == 0 || len(argv) == 0 {
		return nil, errors.New("sandbox: relay: no program")
	}
	args := append(append(append([]string{}, helper[1:]...), "--", path), argv...)
	cmd, err := s.Command(helper[0], args...)
	if err != nil {
		return nil, err
	}
	r := &Relay{Cmd: cmd, report: make(chan string, 1)}
	if r.status, r.statusW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	if r.controlR, r.control, err = os.Pipe(); err != nil {
		r.status.Close()
		r.statusW.Close()
		return nil, fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	cmd.ExtraFiles = []*os.File{r.statusW, r.controlR}
	// The command gets SIGINT and SIGQUIT with their default action, as
	// this process has them, however nsenter and the relay were started
	// (Forwarding.Start starts them ignored).
	cmd.Env = append(cmd.Env, envRelay+"=1", SignalDefaults(syscall.SIGINT, syscall.SIGQUIT))
	return r, nil
}

// Start starts the relay.
func (r *Relay) Start() error {
	err := r.Cmd.Start()
	r.statusW.Close()
	r.controlR.Close()
	if err != nil {
		r.status.Close()
		r.control.Close()
		return err
	}
	go func() {
		// The last line the inside half wrote; EOF once it has ended (the
		// command does not inherit the pipe).
		b, _ := io.ReadAll(r.status)
		r.status.Close()
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		r.report <- lines[len(lines)-1]
	}()
	return nil
}

// Signal passes sig on to the command (once it has started, if it has not
// yet). It never blocks for long: a signal number is a few bytes on a pipe.
func (r *Relay) Signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.control != nil {
		fmt.Fprintf(r.control, "%d\n", int(sig))
	}
}

// Wait waits for the command and returns its status, shell-style: its exit
// code, or 128+N when signal N ended it. When the inside half could not
// say (it never started: nsenter could not join), the status is nsenter's.
func (r *Relay) Wait() (int, error) {
	werr := r.Cmd.Wait()
	report := <-r.report
	r.mu.Lock()
	r.control.Close()
	r.control = nil
	r.mu.Unlock()
	if code, ok := parseReport(report); ok {
		return code, nil
	}
	return exitCode(r.Cmd, werr)
}

// parseReport reads the inside half's last word: "exit N" or "signal N".
func parseReport(line string) (int, bool) {
	what, num, ok := strings.Cut(line, " ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > 255 {
		return 0, false
	}
	switch what {
	case "exit":
		return n, true
	case "signal":
		return 128 + n, true
	}
	return 0, false
}

// RelayInside is a relay's inside half, run by this program as nsenter
// started it: it runs path with argv as its child (standard streams,
// working directory and environment its own, less the relay's variable),
// passes on to it every signal its caller writes on the control pipe, and
// writes how it ended on the status pipe; it returns the status to exit
// with (which only matters when the caller cannot read the pipe).
//
// The child gets the signal dispositions the caller had: SIGINT and SIGHUP
// stay ignored when they were (a command started in the background by a
// shell), every other signal this half catches is the default again in the
// child. Signals sent to this half itself are dropped: they come from the
// terminal, which sent them to the command too (it is in the same process
// group), or from inside the sandbox.
func RelayInside(path string, argv []string) int {
	if !Relayed() {
		fmt.Fprintln(os.Stderr, "netlab: relay: not started as a relay's inside half (by nsenter, for sandbox run and sandbox exec)")
		return 2
	}
	if !isPipe(relayStatusFD) || !isPipe(relayControlFD) {
		fmt.Fprintln(os.Stderr, "netlab: relay: its pipes are missing")
		return 2
	}
	if err := VerifyInside(); err != nil {
		fmt.Fprintf(os.Stderr, "netlab: %v\n", err)
		return 125
	}
	status := os.NewFile(relayStatusFD, "relay-status")
	control := os.NewFile(relayControlFD, "relay-control")
	unix.CloseOnExec(relayStatusFD)
	unix.CloseOnExec(relayControlFD)
	os.Unsetenv(envRelay)

	sigs := make(chan os.Signal, 8)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
		if !signal.Ignored(sig) {
			signal.Notify(sigs, sig)
		}
	}
	go func() {
		for range sigs {
		}
	}()

	cmd := &exec.Cmd{Path: path, Args: argv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(os.Stderr, "netlab: %s: %v\n", argv[0], unwrapExec(err))
		fmt.Fprintf(status, "exit %d\n", code)
		return code
	}
	go func() {
		s := bufio.NewScanner(control)
		for s.Scan() {
			if n, err := strconv.Atoi(s.Text()); err == nil && n > 0 && n < 65 {
				cmd.Process.Signal(syscall.Signal(n))
			}
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "netlab: %s: %v\n", argv[0], err)
		fmt.Fprintln(status, "exit 125")
		return 125
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		fmt.Fprintf(status, "signal %d\n", int(ws.Signal()))
		return 128 + int(ws.Signal())
	}
	fmt.Fprintf(status, "exit %d\n", ws.ExitStatus())
	return ws.ExitStatus()
}

// Relayed says whether this process was started as a relay's inside half
// (by Relay's nsenter): RelayInside runs only then.
func Relayed() bool { return os.Getenv(envRelay) == "1" }

// isPipe says whether the descriptor fd is open on a pipe.
func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// unwrapExec drops os/exec's "fork/exec PATH:" from a start error: the
// caller names the command.
func unwrapExec(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Forwarding passes signals on to a command, as ForwardSignals set it up.
type Forwarding struct {
	sigs   chan os.Signal
	caught []os.Signal // SIGINT and SIGQUIT when they are caught (not ignored)
	done   chan struct{}
	once   sync.Once
}

// ForwardSignals passes on to fn the signals a program that runs a command
// for its caller should pass on, as a shell's job control expects, until
// Stop: SIGTERM and SIGHUP, and SIGINT and SIGQUIT unless they came from
// this process's terminal (it is in the terminal's foreground process
// group, which the command shares, so the terminal sent them to the
// command too: a second one would cut short the command's own handling of
// Ctrl-C). SIGINT and SIGHUP that this process inherited as ignored stay
// ignored, and are not passed on.
func ForwardSignals(fn func(syscall.Signal)) *Forwarding {
	f := &Forwarding{sigs: make(chan os.Signal, 8), done: make(chan struct{})}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
		if signal.Ignored(sig) {
			continue
		}
		signal.Notify(f.sigs, sig)
		if sig == syscall.SIGINT || sig == syscall.SIGQUIT {
			f.caught = append(f.caught, sig)
		}
	}
	go func() {
		for {
			select {
			case <-f.done:
				return
			case s := <-f.sigs:
				sig := s.(syscall.Signal)
				if (sig == syscall.SIGINT || sig == syscall.SIGQUIT) && terminalForeground() {
					continue
				}
				fn(sig)
			}
		}
	}()
	return f
}

// Start runs start (a command's Start) with SIGINT and SIGQUIT ignored for
// that moment, so that the command inherits them ignored (an ignored signal
// stays ignored through fork and exec): nsenter, which waits for what it
// joined, then outlives the terminal's Ctrl-C, and what it started has a
// parent to reap it. The netlab it starts gives them back their default
// action for the command (SignalDefaults, which Relay sets).
func (f *Forwarding) Start(start func() error) error {
	if len(f.caught) == 0 {
		return start()
	}
	signal.Ignore(f.caught...)
	err := start()
	signal.Notify(f.sigs, f.caught...)
	return err
}

// Stop stops passing signals on; they have their default action again.
func (f *Forwarding) Stop() {
	f.once.Do(func() {
		signal.Stop(f.sigs)
		close(f.done)
	})
}

// terminalForeground says whether this process is in the foreground
// process group of its controlling terminal: then a SIGINT or SIGQUIT it
// gets is most likely the terminal's (Ctrl-C, Ctrl-\), sent to the whole
// group.
func terminalForeground() bool {
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false // no controlling terminal
	}
	defer unix.Close(fd)
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
