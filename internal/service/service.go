// Package service is a service's own side: `netlab supervise SPEC`, the
// supervisor that runs a lab service's program and restarts it as its
// policy says, and `netlab view-exec SPEC`, which becomes the program in
// its namespace's view; and the files they share with the side that starts,
// stops and observes them (internal/supervise): the spec, the state, the
// log. It touches no lab object: like `netlab reflect`, it is a process a
// lab runs, not a driver.
package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/atomicfile"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/view"
	"github.com/netlab-dev/netlab/topology"
)

// GraceTime is how long a program gets between SIGTERM and SIGKILL.
const GraceTime = 2 * time.Second

// Spec is a service as its supervisor runs it.
type Spec struct {
	Lab     string   `json:"lab"`
	NS      string   `json:"ns"` // the namespace as on the machine
	Name    string   `json:"name"`
	Command []string `json:"command"`
	Env     []string `json:"env,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	User    string   `json:"user,omitempty"`
	Restart string   `json:"restart"`
	// View and Hosts are the namespace's view and the lab's hosts file.
	View  string `json:"view,omitempty"`
	Hosts string `json:"hosts,omitempty"`
	// Hash is what the plan compares: another one means a restart.
	Hash string `json:"hash"`
	// Run is the netlab verb the supervisor runs with the spec's path as
	// the supervised program: RunViewExec ("", a service's program in its
	// view) or RunTimeline (a timeline's runner).
	Run string `json:"run,omitempty"`
}

// What a supervisor runs (Spec.Run).
const (
	RunViewExec = "view-exec"
	RunTimeline = "timeline-run"
)

// verb is the netlab verb that becomes the supervised program.
func (s *Spec) verb() string {
	if s.Run == "" {
		return RunViewExec
	}
	return s.Run
}

// What names the supervised program in its log's lines: "service NS/NAME"
// or "timeline NAME".
func (s *Spec) What() string {
	if s.Run == RunTimeline {
		return "timeline " + s.Name
	}
	return "service " + s.NS + "/" + s.Name
}

// State is what a supervisor says of its program.
type State struct {
	// PID and Start name the program now running; 0 when none is.
	PID   int    `json:"pid,omitempty"`
	Start uint64 `json:"start,omitempty"`
	// Restarts counts the times the supervisor started it again.
	Restarts int `json:"restarts"`
	// Exit says how it last ended ("" while it never has).
	Exit string `json:"exit,omitempty"`
	// LogFrom is the log's size when the program last started: a log
	// probe reads from there.
	LogFrom int64     `json:"log_from"`
	Since   time.Time `json:"since"`
}

// ReadSpec reads a service's spec file.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("service spec %s: %w", path, err)
	}
	return &spec, nil
}

// ReadState reads the state file of the service whose files start with
// base (its spec path without .json).
func ReadState(base string) (*State, error) {
	b, err := os.ReadFile(base + ".state")
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Supervise is `netlab supervise SPEC`: it runs the service's program (or
// the timeline's runner) and restarts it as the spec says, until told to stop (SIGTERM, SIGINT,
// SIGHUP), then ends the program's process group (SIGTERM, SIGKILL after
// the grace time). Its own output is the service's log.
func Supervise(specPath string) error {
	spec, err := ReadSpec(specPath)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(specPath, ".json")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	st := State{}
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		if fi, err := os.Stat(base + ".log"); err == nil {
			st.LogFrom = fi.Size()
		}
		done, pid, err := startProgram(bin, spec.verb(), specPath)
		// The crash suites' hook ends one life of a program: the program
		// started again runs without it, as after a real crash.
		os.Unsetenv("NETLAB_CRASH_AFTER")
		if err != nil {
			fmt.Fprintf(os.Stderr, "netlab supervise: %s: %v\n", spec.What(), err)
			st.PID, st.Exit = 0, err.Error()
			saveState(base, st)
			return err
		}
		st.PID, st.Since = pid, started
		st.Start, _ = proc.StartTime(pid)
		saveState(base, st)
		fmt.Fprintf(os.Stderr, "netlab: %s: started pid %d\n", spec.What(), pid)
		var ws syscall.WaitStatus
		select {
		case ws = <-done:
		case sig := <-stop:
			fmt.Fprintf(os.Stderr, "netlab: %s: %v: stopping pid %d\n", spec.What(), sig, pid)
			syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(GraceTime):
				syscall.Kill(-pid, syscall.SIGKILL)
				<-done
			}
			syscall.Kill(-pid, syscall.SIGKILL) // what it started and left
			st.PID, st.Exit = 0, "stopped"
			saveState(base, st)
			return nil
		}
		st.PID, st.Exit = 0, exitText(ws)
		failed := !ws.Exited() || ws.ExitStatus() != 0
		fmt.Fprintf(os.Stderr, "netlab: %s: %s\n", spec.What(), st.Exit)
		if spec.Restart == topology.RestartNo || spec.Restart == topology.RestartOnFailure && !failed {
			saveState(base, st)
			return nil
		}
		saveState(base, st)
		// Back off while it keeps failing fast; a run of 10 s starts over.
		if time.Since(started) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-stop:
			st.Exit = "stopped"
			saveState(base, st)
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		st.Restarts++
	}
}

// startProgram starts `netlab VERB SPEC` (view-exec, which becomes the
// program, or timeline-run) in a process group of its own, dying with this
// process; done gets its wait status.
func startProgram(bin, verb, specPath string) (done chan syscall.WaitStatus, pid int, err error) {
	started := make(chan error, 1)
	done = make(chan syscall.WaitStatus, 1)
	var p *os.Process
	go func() {
		// The parent-death signal follows the thread that forks: keep it
		// until the program ends.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bin, verb, specPath)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p = cmd.Process
		started <- nil
		cmd.Wait()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		done <- ws
	}()
	if err := <-started; err != nil {
		return nil, 0, err
	}
	return done, p.Pid, nil
}

func exitText(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by %s (%s)", unix.SignalName(ws.Signal()), ws.Signal())
	}
	return "exited with status " + strconv.Itoa(ws.ExitStatus())
}

func saveState(base string, st State) {
	b, _ := json.Marshal(st)
	if err := atomicfile.Write(base+".state", b); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "netlab supervise: %v\n", err)
	}
}

// environ is the environment a service starts with: a plain PATH, as a
// service manager gives, then the spec's.
func environ(spec *Spec) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "LANG=C.UTF-8"}
	return append(env, spec.Env...)
}

// Exec is `netlab view-exec SPEC [-- CMD...]`: it becomes the
// service's program, in the namespace's view, as the spec's user, dying
// with its supervisor; or, given a command, that command in the same view
// and as the same user (a readiness probe).
func Exec(specPath string, argv []string) error {
	spec, err := ReadSpec(specPath)
	if err != nil {
		return err
	}
	vs := view.Spec{NetNS: spec.NS, Root: spec.View, Hosts: spec.Hosts, User: spec.User, Dir: spec.Dir, Env: environ(spec)}
	if len(argv) > 0 {
		return view.Exec(vs, argv)
	}
	vs.DieWithParent = true
	return view.Exec(vs, spec.Command)
}
