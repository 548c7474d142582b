// Package supervise runs and ends the programs netlab starts for a lab and
// the processes in its namespaces. A supervised process on a lab's devices
// (a reflector or TUN<->UDP bridge: `netlab reflect`; an emulated link:
// `netlab emulate`, under its first end) is detached in its own session,
// with a pidfile, a spec file, a stats file (and an emulator's model file)
// and a log in the lab's directory; it is signalled by PID only, after
// /proc/<pid>/cmdline and exe say it is that program of that namespace and
// device.
package supervise

import (
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

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/reflector"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
)

// Supervisor keeps one lab's supervised processes.
type Supervisor struct {
	store *store.Store
	lab   string
	log   io.Writer
}

// New returns the supervisor of the lab's processes, which logs what it
// stops to log.
func New(store *store.Store, lab string, log io.Writer) *Supervisor {
	if log == nil {
		log = io.Discard
	}
	return &Supervisor{store: store, lab: lab, log: log}
}

// GraceTime is how long a process gets between SIGTERM and SIGKILL.
const GraceTime = service.GraceTime

func (s *Supervisor) dir() string { return filepath.Join(s.store.Dir(s.lab), "proc") }

func procBase(dir, ns, dev string) string { return filepath.Join(dir, ns+"-"+dev) }

// Binary finds the netlab binary that runs reflectors: NETLAB_BIN,
// this program if it is netlab, or netlab on PATH (a test binary using the
// fixture is not netlab).
func Binary() (string, error) {
	if b := os.Getenv("NETLAB_BIN"); b != "" {
		if fi, err := os.Stat(b); err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("NETLAB_BIN=%s is not an executable netlab binary", b)
		}
		return b, nil
	}
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "netlab" {
		return exe, nil
	}
	if p, err := exec.LookPath("netlab"); err == nil {
		return p, nil
	}
	return "", errors.New("reflectors run as `netlab reflect`, and no netlab binary was found: put it on PATH or set NETLAB_BIN")
}

// ourProcess says whether pid is the reflect or emulate process of ns/dev.
func ourProcess(pid int, ns, dev string) bool { return programOf(pid, ns, dev) != "" }

// programOf is the program pid runs for ns/dev (state.ProgramReflect or
// state.ProgramEmulate), "" when it is no such process of netlab's.
func programOf(pid int, ns, dev string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 2 || (args[1] != state.ProgramReflect && args[1] != state.ProgramEmulate) {
		return ""
	}
	cmd := " " + strings.Join(args, " ") + " "
	if !strings.Contains(cmd, " --ns "+ns+" ") || !strings.Contains(cmd, " --dev "+dev+" ") {
		return ""
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || !strings.HasPrefix(filepath.Base(exe), "netlab") {
		return ""
	}
	return args[1]
}

// Idle says whether the lab has no pidfile of a process netlab started:
// no reflector or emulator, no service, no timeline's runner. A stale
// pidfile counts: the answer errs on the side of processes that may run.
func (s *Supervisor) Idle() bool {
	dir := s.store.Dir(s.lab)
	for _, pattern := range []string{
		filepath.Join(s.dir(), "*.pid"),
		s.serviceBase("*", "*") + ".pid",
		filepath.Join(TimelinesDir(dir), "*.pid"),
	} {
		if m, err := filepath.Glob(pattern); err != nil || len(m) > 0 {
			return false
		}
	}
	return true
}

// Observe reads the lab's pidfiles: live processes of ours go into their
// namespace's Processes; stale pidfiles are ignored.
func (s *Supervisor) Observe(snap *state.Snapshot) {
	dir := s.dir()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, f := range files {
		ns, dev, pid, ok := readPidfile(f)
		if !ok || len(proc.Alive([]int{pid})) == 0 {
			continue
		}
		program := programOf(pid, ns, dev)
		if program == "" {
			continue
		}
		o := snap.Namespaces[ns]
		if o == nil {
			continue
		}
		base := strings.TrimSuffix(f, ".pid")
		spec, _ := os.ReadFile(base + ".spec")
		if o.Processes == nil {
			o.Processes = map[string]*state.Process{}
		}
		pr := &state.Process{PID: pid, Spec: strings.TrimSpace(string(spec)), Program: program}
		if program == state.ProgramEmulate {
			pr.Emulator = emulatorState(base, pr.Spec)
		}
		o.Processes[dev] = pr
	}
}

// readPidfile parses <dir>/<ns>-<dev>.pid: the device name is the part after
// the last '-' (device names cannot hold '-'... they can: so the file also
// holds "pid ns dev").
func readPidfile(path string) (ns, dev string, pid int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return "", "", 0, false
	}
	pid, err = strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return "", "", 0, false
	}
	return f[1], f[2], pid, true
}

// Start starts `netlab reflect` on ns/dev with spec and waits until it runs
// (its first stats file) or died (then its log says why).
func (s *Supervisor) Start(ns, dev, spec string) error {
	return s.start(state.ProgramReflect, ns, dev, spec, nil)
}

// start starts program (reflect or emulate) on ns/dev with spec, after
// before (given the files' common path, to write what the program reads),
// and waits until it runs (its first stats file) or died (then its log
// says why).
func (s *Supervisor) start(program, ns, dev, spec string, before func(base string) error) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	dir := s.dir()
	if err := s.store.PrivateDir(dir); err != nil {
		return err
	}
	base := procBase(dir, ns, dev)
	logf, err := os.OpenFile(base+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	os.Remove(base + ".stats.json")
	args := []string{program, "--ns", ns, "--dev", dev, "--stats-file", base + ".stats.json"}
	if before != nil {
		if err := before(base); err != nil {
			return err
		}
	}
	if program == state.ProgramEmulate {
		args = append(args, "--model-file", base+".model.json")
	}
	args = append(args, strings.Fields(spec)...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// Its own session: a Ctrl-C in the terminal that ran `netlab up` does
	// not reach it, and it outlives netlab.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s %s: %w", bin, strings.Join(args, " "), err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it dies while we run
	if err := os.WriteFile(base+".spec", []byte(spec+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(base+".pid", []byte(fmt.Sprintf("%d %s %s\n", pid, ns, dev)), 0o600); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			return fmt.Errorf("netlab %s on %s/%s exited at once (%v): %s", program, ns, dev, err, tail(base+".log"))
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := os.Stat(base + ".stats.json"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("netlab %s on %s/%s did not start within 5s: %s", program, ns, dev, tail(base+".log"))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// Stop ends the reflect process of ns/dev by PID (SIGTERM, SIGKILL after
// the grace time) and removes its files. nil if it is not running.
func (s *Supervisor) Stop(ns, dev string) error {
	base := procBase(s.dir(), ns, dev)
	_, _, pid, ok := readPidfile(base + ".pid")
	if ok && len(proc.Alive([]int{pid})) > 0 && ourProcess(pid, ns, dev) {
		program := programOf(pid, ns, dev)
		fmt.Fprintf(s.log, "stopping netlab %s %d on %s/%s\n", program, pid, ns, dev)
		if left := proc.Stop([]int{pid}, GraceTime); len(left) > 0 {
			return fmt.Errorf("netlab %s %d on %s/%s did not stop", program, pid, ns, dev)
		}
	}
	for _, ext := range []string{".pid", ".spec", ".stats.json", ".model.json"} {
		os.Remove(base + ext)
	}
	return nil
}

// StopAll stops every supervised process of the lab: its reflectors, its
// services, its timelines' runners, and any stray one (see Strays).
func (s *Supervisor) StopAll() ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(s.dir(), "*.pid"))
	var stopped []string
	var errs []error
	for _, f := range files {
		ns, dev, _, ok := readPidfile(f)
		if !ok {
			os.Remove(f)
			continue
		}
		if err := s.Stop(ns, dev); err != nil {
			errs = append(errs, err)
			continue
		}
		stopped = append(stopped, ns+"/"+dev)
	}
	specs, _ := filepath.Glob(filepath.Join(s.store.Dir(s.lab), "services", "*", "*.json"))
	for _, f := range specs {
		base := strings.TrimSuffix(f, ".json")
		ns, name := filepath.Base(filepath.Dir(base)), filepath.Base(base)
		if err := s.StopService(ns, name); err != nil {
			errs = append(errs, err)
			continue
		}
		stopped = append(stopped, "service "+ns+"/"+name)
	}
	timelines, err := s.StopTimelines()
	errs = append(errs, err)
	for _, name := range timelines {
		stopped = append(stopped, "timeline "+name)
	}
	strays, err := s.StopStrays()
	return append(stopped, strays...), errors.Join(append(errs, err)...)
}

// labProcess is a reflect process found by its command line.
type labProcess struct {
	pid     int
	ns, dev string
	what    string // "netlab reflect" unless said
}

func (p labProcess) String() string {
	what := p.what
	if what == "" {
		what = "netlab reflect"
	}
	if p.ns == "" {
		return fmt.Sprintf("%s %d of %s", what, p.pid, p.dev)
	}
	return fmt.Sprintf("%s %d on %s/%s", what, p.pid, p.ns, p.dev)
}

// strays finds the lab's reflect processes that no pidfile names: a kill
// between starting one and writing its pidfile leaves it running unknown.
// They are the lab's by their command line: the --stats-file each is given
// lies in the lab's own directory.
func (s *Supervisor) strays() []labProcess {
	dir := s.dir() + string(filepath.Separator)
	services := filepath.Join(s.store.Dir(s.lab), "services") + string(filepath.Separator)
	timelines := TimelinesDir(s.store.Dir(s.lab)) + string(filepath.Separator)
	ents, _ := os.ReadDir("/proc")
	var out []labProcess
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid <= 1 {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[1] == "supervise" && strings.HasPrefix(args[2], services) && isSupervisor(pid, args[2]) {
			// A service's supervisor no pidfile names (or another's).
			base := strings.TrimSuffix(args[2], ".json")
			if known, ok := s.liveSupervisor(base); !ok || known != pid {
				ns, name := filepath.Base(filepath.Dir(base)), filepath.Base(base)
				out = append(out, labProcess{pid: pid, ns: ns, dev: name, what: "service supervisor"})
			}
			continue
		}
		if len(args) == 3 && args[1] == "supervise" && strings.HasPrefix(args[2], timelines) && isSupervisor(pid, args[2]) {
			// A timeline's supervisor no pidfile names.
			base := strings.TrimSuffix(args[2], ".json")
			if known, ok := s.liveSupervisor(base); !ok || known != pid {
				out = append(out, labProcess{pid: pid, dev: filepath.Base(base), what: "timeline supervisor"})
			}
			continue
		}
		if len(args) < 2 || (args[1] != state.ProgramReflect && args[1] != state.ProgramEmulate) {
			continue
		}
		var p labProcess
		if args[1] == state.ProgramEmulate {
			p.what = "netlab emulate"
		}
		var stats string
		for i := 2; i+1 < len(args); i++ {
			switch args[i] {
			case "--ns":
				p.ns = args[i+1]
			case "--dev":
				p.dev = args[i+1]
			case "--stats-file":
				stats = args[i+1]
			}
		}
		if !strings.HasPrefix(stats, dir) || p.ns == "" || p.dev == "" || !ourProcess(pid, p.ns, p.dev) {
			continue
		}
		if _, _, known, ok := readPidfile(procBase(s.dir(), p.ns, p.dev) + ".pid"); ok && known == pid {
			continue
		}
		p.pid = pid
		out = append(out, p)
	}
	return out
}

// Strays counts the processes of the lab (reflectors, service supervisors)
// that no pidfile names.
func (s *Supervisor) Strays() int { return len(s.strays()) }

// StopStrays ends the lab's stray processes (SIGTERM, SIGKILL after the
// grace time): up then starts the one the file wants, and down leaves none.
func (s *Supervisor) StopStrays() ([]string, error) {
	var stopped []string
	var errs []error
	for _, p := range s.strays() {
		fmt.Fprintf(s.log, "stopping %s (no pidfile: left by an interrupted run)\n", p)
		if left := proc.Stop([]int{p.pid}, 2*GraceTime); len(left) > 0 {
			errs = append(errs, fmt.Errorf("%s did not stop", p))
			continue
		}
		stopped = append(stopped, p.String())
	}
	return stopped, errors.Join(errs...)
}

// Stats reads a running process's counters.
func (s *Supervisor) Stats(ns, dev string) (reflector.StatsFile, error) {
	return reflector.ReadStats(procBase(s.dir(), ns, dev) + ".stats.json")
}

// StopInNamespaces ends every process inside the namespaces (one walk of
// /proc for all): a process keeps a namespace and its links alive after
// the namespace's name is deleted. SIGTERM, SIGKILL after the grace time;
// never this process. It says which it stops.
func (s *Supervisor) StopInNamespaces(names []string) error {
	pids, err := namespace.PidsIn(names)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		var targets []int
		for _, pid := range pids[ns] {
			if pid == os.Getpid() {
				continue
			}
			targets = append(targets, pid)
			fmt.Fprintf(s.log, "stopping process %d (%s) in namespace %s\n", pid, proc.Name(pid), ns)
		}
		if left := proc.Stop(targets, GraceTime); len(left) > 0 {
			errs = append(errs, fmt.Errorf("namespace %s: processes %v did not stop", ns, left))
		}
	}
	return errors.Join(errs...)
}
