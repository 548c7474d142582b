package supervise

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/store"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/topology"
)

// patience bounds every wait for a process to do something: generous, since
// the machine may be slow and busy; a test that passes never waits it out.
const patience = 20 * time.Second

// lab is one test's lab: a store in a temporary directory and a network
// namespace of its own (nltest-sup-XXXXXX) for its services.
type lab struct {
	t     *testing.T
	store *store.Store
	name  string
	ns    string
	sup   *Supervisor
	said  bytes.Buffer // what the supervisor says it stops
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testkit.RequireRoot(t, "network namespaces for the services", "sh", "sleep")
	l := &lab{t: t, store: store.New(t.TempDir()), name: testkit.Name(t, "sup", 4), ns: testkit.Name(t, "nltest-sup-", 6)}
	l.sup = New(l.store, l.name, &l.said)
	if err := namespace.Create(l.ns); err != nil {
		t.Fatal(err)
	}
	// Runs after every service's own cleanup (they are registered later):
	// nothing of the test may be left in the namespace.
	t.Cleanup(func() {
		pids, err := namespace.PidsIn([]string{l.ns})
		if left := proc.Alive(pids[l.ns]); err == nil && len(left) > 0 {
			t.Errorf("processes left in namespace %s: %v", l.ns, left)
			proc.Stop(left, time.Second) // ours: they are in the test's namespace
		}
		if err := namespace.Delete(l.ns); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

// service is a spec whose program is `sh -c script`, with env added.
func (l *lab) service(name, restart, script string, env ...string) service.Spec {
	return service.Spec{Lab: l.name, NS: l.ns, Name: name, Command: []string{"/bin/sh", "-c", script}, Env: env, Restart: restart, Hash: "h-" + name}
}

// start starts the service, and stops it when the test ends.
func (l *lab) start(spec service.Spec) {
	l.t.Helper()
	l.t.Cleanup(func() {
		if err := l.sup.StopService(spec.NS, spec.Name); err != nil {
			l.t.Errorf("cleanup: %v", err)
		}
	})
	if err := l.sup.StartService(spec); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) base(name string) string { return l.sup.serviceBase(l.ns, name) }

// supervisor is the pid of the service's running supervisor, 0 if none.
func (l *lab) supervisor(name string) int {
	pid, _ := l.sup.liveSupervisor(l.base(name))
	return pid
}

func (l *lab) log(name string) string {
	b, _ := os.ReadFile(l.sup.ServiceLog(l.ns, name))
	return string(b)
}

// waitState waits until the service's state satisfies cond and returns it.
func (l *lab) waitState(name, what string, cond func(*service.State) bool) *service.State {
	l.t.Helper()
	var st *service.State
	waitFor(l.t, what, func() bool {
		var err error
		st, err = l.sup.ServiceState(l.ns, name)
		return err == nil && cond(st)
	}, func() string { return fmt.Sprintf("state %+v\nlog:\n%s", st, l.log(name)) })
	return st
}

// waitFor polls cond until it holds, failing the test after patience
// with what it waited for and what detail says then.
func waitFor(t *testing.T, what string, cond func() bool, detail func() string) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); {
		if time.Now().After(deadline) {
			msg := ""
			if detail != nil {
				msg = detail()
			}
			t.Fatalf("waited %s for %s\n%s", patience, what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until none of the pids is a live process.
func waitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	waitFor(t, what+" to end", func() bool { return len(proc.Alive(pids)) == 0 },
		func() string { return fmt.Sprintf("alive: %v of %v", proc.Alive(pids), pids) })
}

// waitPidfile waits for a program to write a pid to path and returns it.
func waitPidfile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+path, func() bool {
		b, err := os.ReadFile(path)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}, nil)
	return pid
}

// netnsOf is the network namespace a process is in, as /proc shows it.
func netnsOf(pid int) string {
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return link
}

// netnsID is the link /proc/PID/ns/net of a process in the named namespace.
func netnsID(t *testing.T, ns string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(namespace.Path(ns), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

var startedRE = regexp.MustCompile(`started pid (\d+)`)

// A service with restart "no" runs once: its program ends, its exit status
// stays in the state file, the supervisor ends. Its log has the program's
// stdout and stderr and what the supervisor says.
func TestRestartNo(t *testing.T) {
	l := newLab(t)
	spec := l.service("once", topology.RestartNo, `echo to stdout; echo to stderr >&2; sleep 1; exit 3`)
	l.start(spec)
	st := l.waitState("once", "the program to end", func(st *service.State) bool { return st.Exit != "" })
	if st.PID != 0 || st.Exit != "exited with status 3" || st.Restarts != 0 {
		t.Errorf("state %+v, want no pid, exited with status 3, no restarts", st)
	}
	waitFor(t, "the supervisor to end", func() bool { return l.supervisor("once") == 0 }, nil)
	log := l.log("once")
	for _, want := range []string{"to stdout\n", "to stderr\n", "service " + l.ns + "/once: exited with status 3\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if n := len(startedRE.FindAllString(log, -1)); n != 1 {
		t.Errorf("started %d times, want once:\n%s", n, log)
	}
	if ok, why := l.sup.Ready(spec, nil); ok || why != "not running" {
		t.Errorf("Ready of an ended service = %v, %q", ok, why)
	}
}

// on-failure restarts a program that fails (a status other than 0, or a
// signal) and not one that exits 0; always restarts both. Restarts counts.
func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name, restart, script string
		restarts              bool
		exit                  string
	}{
		{"on-failure, failing", topology.RestartOnFailure, `echo run; exit 3`, true, "exited with status 3"},
		{"on-failure, killed", topology.RestartOnFailure, `echo run; kill -KILL $$`, true, "killed by SIGKILL (killed)"},
		{"on-failure, exit 0", topology.RestartOnFailure, `echo run; sleep 1; exit 0`, false, "exited with status 0"},
		{"always, failing", topology.RestartAlways, `echo run; exit 3`, true, "exited with status 3"},
		{"always, exit 0", topology.RestartAlways, `echo run; exit 0`, true, "exited with status 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLab(t)
			l.start(l.service("svc", tt.restart, tt.script))
			if !tt.restarts {
				l.waitState("svc", "the program to end", func(st *service.State) bool { return st.Exit != "" })
				waitFor(t, "the supervisor to end", func() bool { return l.supervisor("svc") == 0 }, nil)
				st, _ := l.sup.ServiceState(l.ns, "svc")
				if st.PID != 0 || st.Restarts != 0 || st.Exit != tt.exit {
					t.Errorf("state %+v, want not restarted, %s", st, tt.exit)
				}
				return
			}
			st := l.waitState("svc", "3 restarts", func(st *service.State) bool { return st.Restarts >= 3 })
			if st.Exit != tt.exit {
				t.Errorf("state %+v, want %s", st, tt.exit)
			}
			if l.supervisor("svc") == 0 {
				t.Errorf("the supervisor ended; it should go on restarting")
			}
			log := l.log("svc")
			if n := len(startedRE.FindAllString(log, -1)); n < 3 {
				t.Errorf("the log says it started %d times after %d restarts:\n%s", n, st.Restarts, log)
			}
			if n := strings.Count(log, "run\n"); n < 3 {
				t.Errorf("the program's output is in the log %d times after %d restarts:\n%s", n, st.Restarts, log)
			}
		})
	}
}

// StopService ends the supervisor, the program and what the program
// started (its process group), by pid; it keeps the log and says it
// stopped it; a second stop finds nothing to do.
func TestStopServiceEndsItsProcessGroup(t *testing.T) {
	l := newLab(t)
	grandchild := filepath.Join(t.TempDir(), "grandchild")
	spec := l.service("tree", topology.RestartAlways, `sleep 1000 & echo $! > "$GRANDCHILD"; echo started its child; wait`, "GRANDCHILD="+grandchild)
	l.start(spec)
	st := l.waitState("tree", "the program to run", func(st *service.State) bool { return st.PID != 0 })
	sup, program := l.supervisor("tree"), st.PID
	grand := waitPidfile(t, grandchild)
	if sup == 0 || len(proc.Alive([]int{sup, program, grand})) != 3 {
		t.Fatalf("supervisor %d, program %d, grandchild %d: alive %v", sup, program, grand, proc.Alive([]int{sup, program, grand}))
	}
	// The program and its child run in the lab's namespace.
	want := netnsID(t, l.ns)
	for _, pid := range []int{program, grand} {
		if got := netnsOf(pid); got != want {
			t.Errorf("process %d is in %s, not the service's namespace %s", pid, got, want)
		}
	}

	if err := l.sup.StopService(l.ns, "tree"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the supervisor, the program and its child", sup, program, grand)
	for _, ext := range []string{".pid", ".state"} {
		if _, err := os.Stat(l.base("tree") + ext); err == nil {
			t.Errorf("%s is left", ext)
		}
	}
	if log := l.log("tree"); !strings.Contains(log, fmt.Sprintf("stopping pid %d", program)) || !strings.Contains(log, "started its child") {
		t.Errorf("the log does not say it stopped pid %d:\n%s", program, log)
	}
	if said := l.said.String(); !strings.Contains(said, fmt.Sprintf("stopping service %s/tree (supervisor %d)", l.ns, sup)) {
		t.Errorf("StopService said %q", said)
	}
	if err := l.sup.StopService(l.ns, "tree"); err != nil {
		t.Errorf("stopping a stopped service: %v", err)
	}
}

// A supervisor killed with SIGKILL (which it cannot catch) takes its
// program with it: the parent-death signal. What the program started
// lives on, in its process group, until StopService (which up runs before
// it starts the service again) ends it.
func TestKilledSupervisorKillsItsProgram(t *testing.T) {
	l := newLab(t)
	grandchild := filepath.Join(t.TempDir(), "grandchild")
	l.start(l.service("orphan", topology.RestartAlways, `sleep 1000 & echo $! > "$GRANDCHILD"; wait`, "GRANDCHILD="+grandchild))
	st := l.waitState("orphan", "the program to run", func(st *service.State) bool { return st.PID != 0 })
	sup, program := l.supervisor("orphan"), st.PID
	grand := waitPidfile(t, grandchild)
	if sup == 0 {
		t.Fatal("no supervisor runs")
	}
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the killed supervisor and its program", sup, program)
	if err := l.sup.StopService(l.ns, "orphan"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "what the program started", grand)
	if said := l.said.String(); !strings.Contains(said, fmt.Sprintf("left by its program %d", program)) {
		t.Errorf("StopService said %q", said)
	}
}

// The lab's services, running or not, are in the snapshot.
func TestObserveServices(t *testing.T) {
	l := newLab(t)
	spec := l.service("web", topology.RestartOnFailure, `exec sleep 1000`)
	l.start(spec)
	st := l.waitState("web", "the program to run", func(st *service.State) bool { return st.PID != 0 })
	observe := func() *state.Service {
		snap := &state.Snapshot{Namespaces: map[string]*state.Namespace{l.ns: {}}}
		l.sup.ObserveServices(snap)
		return snap.Namespaces[l.ns].Services["web"]
	}
	got := observe()
	if got == nil || got.Supervisor != l.supervisor("web") || got.Supervisor == 0 || got.PID != st.PID || got.Hash != spec.Hash {
		t.Errorf("observed %+v, want supervisor %d, pid %d, hash %s", got, l.supervisor("web"), st.PID, spec.Hash)
	}
	spec2, err := service.ReadSpec(l.sup.ServiceSpecPath(l.ns, "web"))
	if err != nil || strings.Join(spec2.Command, " ") != strings.Join(spec.Command, " ") || spec2.Restart != spec.Restart {
		t.Errorf("service.ReadSpec = %+v, %v; want %+v", spec2, err, spec)
	}
	// Its supervisor killed, it is still the lab's: down, not running.
	syscall.Kill(got.Supervisor, syscall.SIGKILL)
	waitFor(t, "the supervisor to end", func() bool { return l.supervisor("web") == 0 }, nil)
	if got := observe(); got == nil || got.Supervisor != 0 || got.PID != 0 {
		t.Errorf("observed with its supervisor killed: %+v, want no supervisor nor pid", got)
	}
	// Stopped, it is no longer the lab's: up would not stop it again.
	if err := l.sup.StopService(l.ns, "web"); err != nil {
		t.Fatal(err)
	}
	if got := observe(); got != nil {
		t.Errorf("observed after stop: %+v, want none", got)
	}
	// A namespace the snapshot does not have is skipped.
	l.sup.ObserveServices(&state.Snapshot{Namespaces: map[string]*state.Namespace{}})
}

func TestReadServiceSpecErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := service.ReadSpec(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("service.ReadSpec of bad JSON: %v", err)
	}
	if _, err := service.ReadSpec(filepath.Join(t.TempDir(), "none.json")); !os.IsNotExist(err) {
		t.Errorf("service.ReadSpec of no file: %v", err)
	}
}

func TestPgidOf(t *testing.T) {
	tests := []struct {
		stat string
		pgid int
		ok   bool
	}{
		{"4242 (sleep) S 4200 4200 4100 0 -1 4194304 104 0 0 0 0 0 0 0 20 0 1 0 575484 2400256 240\n", 4200, true},
		{"4242 (a (b) c) R 1 77 77 0", 77, true},
		{"4242 (sh) Z 1", 0, false},
		{"4242 (sh) S 1 x 7", 0, false},
		{"no parenthesis", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		if pgid, ok := pgidOf(tt.stat); pgid != tt.pgid || ok != tt.ok {
			t.Errorf("pgidOf(%.30q) = %d, %v; want %d, %v", tt.stat, pgid, ok, tt.pgid, tt.ok)
		}
	}
}
