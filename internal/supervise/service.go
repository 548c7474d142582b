package supervise

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/atomicfile"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// A service is a user's program netlab runs in a lab namespace. Each has a
// supervisor, `netlab supervise SPEC`, detached from the command that
// started it: it runs the program in the namespace's view (`netlab
// view-exec SPEC`, which becomes the program), sends its output to the
// service's log, restarts it as its restart policy says, and ends it (and
// everything it started: its own process group) when told to stop. The
// program dies with the supervisor (a parent-death signal), so a killed
// supervisor leaves nothing running but what the program started, in its
// process group, which StopService ends. Files per service, in the lab's
// directory under services/NS/: NAME.json (the spec), NAME.pid (the
// supervisor: pid and start time), NAME.state (the program now), NAME.log.

func (s *Supervisor) serviceBase(ns, name string) string {
	return filepath.Join(s.store.Dir(s.lab), "services", ns, name)
}

// ServiceLog is the path of a service's log.
func (s *Supervisor) ServiceLog(ns, name string) string { return s.serviceBase(ns, name) + ".log" }

// ServiceSpecPath is the path of a service's spec.
func (s *Supervisor) ServiceSpecPath(ns, name string) string {
	return s.serviceBase(ns, name) + ".json"
}

// StartService starts the service's supervisor, after ending one already
// running (and a program an earlier supervisor left), and waits until the
// program runs or the supervisor has ended (its log then says why).
func (s *Supervisor) StartService(spec service.Spec) error {
	base := s.serviceBase(spec.NS, spec.Name)
	if err := s.store.PrivateDir(filepath.Dir(base)); err != nil {
		return err
	}
	if err := s.StopService(spec.NS, spec.Name); err != nil {
		return err
	}
	return s.startSupervisor(base, spec)
}

// startSupervisor writes the spec to base.json and starts `netlab
// supervise` of it, detached, with its pidfile; it waits until the program
// runs or the supervisor has ended (its log, base.log, then says why).
func (s *Supervisor) startSupervisor(base string, spec service.Spec) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(base+".json", append(b, '\n')); err != nil {
		return err
	}
	os.Remove(base + ".state")
	bin, err := Binary()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(base+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "supervise", base+".json")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// Its own session: a Ctrl-C in the terminal that ran `netlab up` does
	// not reach it, and it outlives netlab.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	what := spec.What()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start its supervisor: %w", what, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start, _ := proc.StartTime(pid)
	if err := atomicfile.Write(base+".pid", []byte(fmt.Sprintf("%d %d\n", pid, start))); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			return fmt.Errorf("%s ended at once (%v): %s", what, err, Tail(base+".log", 20))
		case <-time.After(10 * time.Millisecond):
		}
		if st, err := service.ReadState(base); err == nil && (st.PID != 0 || st.Exit != "") {
			if st.PID == 0 && spec.Restart == topology.RestartNo {
				return fmt.Errorf("%s ended at once (%s): %s", what, st.Exit, Tail(base+".log", 20))
			}
			return nil
		}
	}
	return fmt.Errorf("%s did not start within 5s: %s", what, Tail(base+".log", 20))
}

// StopService ends a service's supervisor (which ends its program and all
// the program started) by PID, and a program an earlier supervisor left or
// what that program started, and removes its files but the log. nil when
// it is not running.
func (s *Supervisor) StopService(ns, name string) error {
	base := s.serviceBase(ns, name)
	var errs []error
	if pid, ok := s.liveSupervisor(base); ok {
		fmt.Fprintf(s.log, "stopping service %s/%s (supervisor %d)\n", ns, name, pid)
		if left := proc.Stop([]int{pid}, 2*GraceTime); len(left) > 0 {
			errs = append(errs, fmt.Errorf("service %s/%s: supervisor %d did not stop", ns, name, pid))
		}
	}
	if st, err := service.ReadState(base); err == nil && st.PID != 0 {
		start, ok := proc.StartTime(st.PID)
		switch {
		case ok && start == st.Start:
			syscall.Kill(-st.PID, syscall.SIGKILL) // its process group
			proc.Stop([]int{st.PID}, GraceTime)
		case !ok:
			// The program is gone, but not what it started: a SIGKILLed
			// supervisor takes only the program (its parent-death
			// signal), and the rest of its group lives on, holding the
			// service's ports.
			if left := groupIn(ns, st.PID); len(left) > 0 {
				fmt.Fprintf(s.log, "stopping processes %v of service %s/%s, left by its program %d\n", left, ns, name, st.PID)
				proc.Stop(left, GraceTime)
			}
		}
	}
	// The spec goes too: a service with a spec is one the lab has (up
	// would plan to stop it again). Its log stays.
	for _, ext := range []string{".pid", ".state", ".json"} {
		os.Remove(base + ext)
	}
	return errors.Join(errs...)
}

// groupIn returns the processes of the namespace in process group pgid.
// While one lives, the kernel gives no new process the group's number: with
// the program gone, they are what it started (or, after a wrap of pids,
// another group of the lab's own namespace, which down ends anyway).
//
// Equivalent to: `ip netns pids NS | xargs ps -o pid= -o pgid= -p`.
func groupIn(ns string, pgid int) []int {
	pids, err := namespace.PidsIn([]string{ns})
	if err != nil {
		return nil
	}
	var out []int
	for _, pid := range pids[ns] {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if g, ok := pgidOf(string(b)); err == nil && ok && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}

// pgidOf reads the process group from the text of /proc/PID/stat: the
// third field after the command name, which is in parentheses and may
// hold spaces and parentheses itself.
func pgidOf(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return 0, false
	}
	pgid, err := strconv.Atoi(f[2])
	return pgid, err == nil
}

// liveSupervisor returns the pid of the service's supervisor when it runs:
// the pidfile's pid with the same start time, running `netlab supervise`
// of this spec.
func (s *Supervisor) liveSupervisor(base string) (int, bool) {
	b, err := os.ReadFile(base + ".pid")
	if err != nil {
		return 0, false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil || pid <= 1 {
		return 0, false
	}
	if now, ok := proc.StartTime(pid); !ok || now != start || !isSupervisor(pid, base+".json") {
		return 0, false
	}
	return pid, true
}

// isSupervisor says whether pid is `netlab supervise SPEC`.
func isSupervisor(pid int, spec string) bool {
	args := cmdline(pid)
	if len(args) != 3 || args[1] != "supervise" || args[2] != spec {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasPrefix(filepath.Base(exe), "netlab")
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// ObserveServices puts the lab's services, running or not, into their
// namespaces of the snapshot.
func (s *Supervisor) ObserveServices(snap *state.Snapshot) {
	dirs, _ := os.ReadDir(filepath.Join(s.store.Dir(s.lab), "services"))
	for _, d := range dirs {
		o := snap.Namespaces[d.Name()]
		if o == nil || !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(s.store.Dir(s.lab), "services", d.Name(), "*.json"))
		for _, f := range files {
			spec, err := service.ReadSpec(f)
			if err != nil {
				continue
			}
			base := strings.TrimSuffix(f, ".json")
			sv := &state.Service{Name: spec.Name, Hash: spec.Hash}
			if pid, ok := s.liveSupervisor(base); ok {
				sv.Supervisor = pid
			}
			if st, err := service.ReadState(base); err == nil {
				sv.PID, sv.Restarts, sv.Exit = st.PID, st.Restarts, st.Exit
				if sv.Supervisor == 0 {
					sv.PID = 0 // whatever it said, nothing supervises it now
				}
			}
			if o.Services == nil {
				o.Services = map[string]*state.Service{}
			}
			o.Services[spec.Name] = sv
		}
	}
}

// ServiceState reads what a service's supervisor said last.
func (s *Supervisor) ServiceState(ns, name string) (*service.State, error) {
	return service.ReadState(s.serviceBase(ns, name))
}

// Tail returns the last n lines of a file, for errors.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 64<<10 {
		f.Seek(-64<<10, io.SeekEnd)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(the log is empty)"
	}
	return "its log ends:\n  " + strings.Join(lines, "\n  ")
}
