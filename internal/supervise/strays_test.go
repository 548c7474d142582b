package supervise

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/topology"
)

// strayService starts a service and removes its pidfile, as a kill of
// netlab between starting the supervisor and writing the pidfile leaves
// it; it returns the supervisor's and the program's pids.
func (l *lab) strayService(name string) (sup, program int) {
	l.t.Helper()
	l.start(l.service(name, topology.RestartOnFailure, `exec sleep 1000`))
	st := l.waitState(name, "the program to run", func(st *service.State) bool { return st.PID != 0 })
	sup = l.supervisor(name)
	if sup == 0 {
		l.t.Fatal("no supervisor runs")
	}
	if err := os.Remove(l.base(name) + ".pid"); err != nil {
		l.t.Fatal(err)
	}
	return sup, st.PID
}

// A supervisor no pidfile names is a stray of its lab, and of no other;
// StopStrays ends it and, through it, its program.
func TestStopStrays(t *testing.T) {
	l := newLab(t)
	// Another lab's service, in the same store: never ours to stop.
	other := New(l.store, l.name+"x", nil)
	otherSpec := l.service("kept", topology.RestartOnFailure, `exec sleep 1000`)
	otherSpec.Lab = l.name + "x"
	t.Cleanup(func() {
		if _, err := other.StopAll(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := other.StartService(otherSpec); err != nil {
		t.Fatal(err)
	}
	otherSup, _ := other.liveSupervisor(other.serviceBase(l.ns, "kept"))
	os.Remove(other.serviceBase(l.ns, "kept") + ".pid") // a stray of the other lab

	if n := l.sup.Strays(); n != 0 {
		t.Fatalf("%d strays before any", n)
	}
	l.start(l.service("known", topology.RestartOnFailure, `exec sleep 1000`))
	sup, program := l.strayService("lost")
	if n := l.sup.Strays(); n != 1 {
		t.Fatalf("Strays = %d, want 1 (supervisor %d)", n, sup)
	}
	stopped, err := l.sup.StopStrays()
	want := fmt.Sprintf("service supervisor %d on %s/lost", sup, l.ns)
	if err != nil || !slices.Equal(stopped, []string{want}) {
		t.Errorf("StopStrays = %q, %v; want [%q]", stopped, err, want)
	}
	waitGone(t, "the stray supervisor and its program", sup, program)
	if !strings.Contains(l.said.String(), "no pidfile") {
		t.Errorf("StopStrays said %q", l.said.String())
	}
	if n := l.sup.Strays(); n != 0 {
		t.Errorf("Strays = %d after StopStrays", n)
	}
	if l.supervisor("known") == 0 {
		t.Errorf("StopStrays ended a service whose pidfile names it")
	}
	if otherSup == 0 || len(proc.Alive([]int{otherSup})) != 1 || other.Strays() != 1 {
		t.Errorf("StopStrays ended another lab's supervisor %d", otherSup)
	}
}

// StopAll ends every service of the lab, with or without a pidfile.
func TestStopAllServices(t *testing.T) {
	l := newLab(t)
	l.start(l.service("known", topology.RestartOnFailure, `exec sleep 1000`))
	st := l.waitState("known", "the program to run", func(st *service.State) bool { return st.PID != 0 })
	knownSup, knownProgram := l.supervisor("known"), st.PID
	sup, program := l.strayService("lost")

	stopped, err := l.sup.StopAll()
	if err != nil {
		t.Errorf("StopAll: %v", err)
	}
	for _, want := range []string{"service " + l.ns + "/known", fmt.Sprintf("service supervisor %d on %s/lost", sup, l.ns)} {
		if !slices.Contains(stopped, want) {
			t.Errorf("StopAll stopped %q, without %q", stopped, want)
		}
	}
	waitGone(t, "every supervisor and program", knownSup, knownProgram, sup, program)
	if n := l.sup.Strays(); n != 0 {
		t.Errorf("Strays = %d after StopAll", n)
	}
}
