package emulator

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/reflector"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"
	"github.com/netlab-dev/netlab/topology"
)

// Tests with real TAPs in throw-away namespaces, the emulator run as a
// child process (the test binary again, see main_test.go).

func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, TAP devices", "ping") }

// pair makes two namespaces, a TAP in each (ea: 10.77.0.1/24, eb:
// 10.77.0.2/24), up; both namespaces go when the test ends.
func pair(t *testing.T) (string, string) {
	t.Helper()
	var names []string
	for i, dev := range []string{"ea", "eb"} {
		ns := testkit.Name(t, "nle", 4)
		if err := namespace.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := namespace.Delete(ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		h, err := namespace.Open(ns)
		if err != nil {
			t.Fatal(err)
		}
		err = namespace.Do(h, func() error {
			return tundev.Create(dev, tundev.Spec{Kind: tundev.TAP, VnetHdr: true, Owner: -1, Group: -1})
		})
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		ip(t, "-n", ns, "link", "set", "lo", "up")
		ip(t, "-n", ns, "addr", "add", fmt.Sprintf("10.77.0.%d/24", i+1), "dev", dev)
		ip(t, "-n", ns, "link", "set", dev, "up")
		names = append(names, ns)
	}
	return names[0], names[1]
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// emu is an emulator started as a child process.
type emu struct {
	cmd          *exec.Cmd
	stderr       bytes.Buffer
	model, state string
	exited       chan struct{}
	generation   uint64
	nsA, nsB     string
}

// startEmu starts the emulator between ea in nsA and eb in nsB with the
// impairments of each direction, and waits for its first state file.
func startEmu(t *testing.T, nsA, nsB string, a, b topology.Impair, traces map[string][]uint32) *emu {
	t.Helper()
	dir := t.TempDir()
	e := &emu{model: filepath.Join(dir, "model.json"), state: filepath.Join(dir, "state.json"), generation: 1, nsA: nsA, nsB: nsB}
	if err := WriteModel(e.model, &ModelFile{Generation: 1, A: a, B: b, Traces: traces, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	e.cmd = exec.Command(os.Args[0], "--ns", nsA, "--dev", "ea", "--peer-ns", nsB, "--peer-dev", "eb", "--model-file", e.model, "--stats-file", e.state)
	e.cmd.Env = append(os.Environ(), reexecEnv+"=main")
	e.cmd.Stderr = &e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.exited = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		e.cmd.Process.Signal(syscall.SIGKILL) // by PID; a no-op once reaped
		<-e.exited
	})
	e.waitState(t, func(s State) bool { return s.Generation == 1 })
	return e
}

// waitState waits until the state file says what ok wants, or the process
// ends (10 s at most: a wait for an event, not a measure of time).
func (e *emu) waitState(t *testing.T, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := ReadState(e.state)
		if err == nil && ok(s) {
			return s
		}
		select {
		case <-e.exited:
			t.Fatalf("emulator exited: %v\n%s", e.cmd.ProcessState, e.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator state not as wanted after 10s: %+v (%v)\n%s", s, err, e.stderr.String())
		}
	}
}

// reload writes a new model and signals the emulator, then waits until it
// says it applied it (or refused it).
func (e *emu) reload(t *testing.T, a, b topology.Impair, traces map[string][]uint32) State {
	t.Helper()
	e.generation++
	gen := e.generation
	if err := WriteModel(e.model, &ModelFile{Generation: gen, A: a, B: b, Traces: traces}); err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	return e.waitState(t, func(s State) bool { return s.Generation == gen || s.Error != "" })
}

// minRTT pings from ns to addr and returns the smallest round trip in ms.
func minRTT(t *testing.T, ns, addr string, n int) float64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", strconv.Itoa(n), "-i", "0.05", "-W", "2", "-q", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, ns, err, out)
	}
	s := string(out)
	i := strings.Index(s, "rtt min/avg/max/mdev = ")
	if i < 0 {
		t.Fatalf("ping:\n%s", s)
	}
	var mn float64
	fmt.Sscanf(s[i+len("rtt min/avg/max/mdev = "):], "%g", &mn)
	return mn
}

// carrierOf reads whether dev in ns has a carrier (LOWER_UP).
func carrierOf(t *testing.T, ns, dev string) bool {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "link", "show", "dev", dev).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s: %v\n%s", dev, err, out)
	}
	return strings.Contains(string(out), "LOWER_UP")
}

// waitCarrier waits (10 s at most) until dev's carrier is want.
func waitCarrier(t *testing.T, ns, dev string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if carrierOf(t, ns, dev) == want {
			return
		}
	}
	t.Fatalf("%s in %s: carrier still %v", dev, ns, !want)
}

// TestEmulatorDelayAndReload: a delay of each direction adds to the round
// trip (its minimum never below the sum, less the 0.15 ms at most a frame
// leaves early: the scheduler wakes ahead by its measured lag); a reload to
// no delay applies in place; a model file that names a
// trace it lacks is refused and the model before stays.
func TestEmulatorDelayAndReload(t *testing.T) {
	requireRoot(t)
	a, b := pair(t)
	e := startEmu(t, a, b, topology.Impair{Delay: 15 * time.Millisecond}, topology.Impair{Delay: 10 * time.Millisecond}, nil)
	checkUnprivileged(t, e.cmd.Process.Pid)
	if mn := minRTT(t, a, "10.77.0.2", 10); mn < 24.7 {
		t.Errorf("15 ms + 10 ms of delay: minimum round trip %.2f ms, below 24.7", mn)
	}
	st := e.reload(t, topology.Impair{}, topology.Impair{}, nil)
	if st.Error != "" || st.A != (topology.Impair{}) {
		t.Fatalf("reload: %+v", st)
	}
	if mn := minRTT(t, a, "10.77.0.2", 10); mn >= 25 {
		t.Errorf("no delay after reload: minimum round trip %.2f ms", mn)
	}
	bad := topology.Impair{Trace: topology.TraceRef{Name: "x", Sum: "missing"}}
	st = e.reload(t, bad, topology.Impair{}, nil)
	if !strings.Contains(st.Error, "not in the model file") || st.Generation != 2 {
		t.Errorf("a model without its trace: %+v", st)
	}
	if st.AtoB.In == 0 || st.AtoB.Out != st.AtoB.In || st.BtoA.Out != st.BtoA.In {
		t.Errorf("counters: %+v %+v", st.AtoB, st.BtoA)
	}
	// SIGTERM: a clean stop, and the TAPs lose their carrier.
	e.cmd.Process.Signal(syscall.SIGTERM)
	<-e.exited
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d\n%s", code, e.stderr.String())
	}
	if carrierOf(t, a, "ea") || carrierOf(t, b, "eb") {
		t.Error("a TAP keeps its carrier with no emulator")
	}
}

// TestEmulatorCarrier: each TAP's carrier follows the other's
// administrative state, as a veth's follows its peer's.
func TestEmulatorCarrier(t *testing.T) {
	requireRoot(t)
	a, b := pair(t)
	e := startEmu(t, a, b, topology.Impair{}, topology.Impair{}, nil)
	waitCarrier(t, a, "ea", true)
	ip(t, "-n", b, "link", "set", "eb", "down")
	waitCarrier(t, a, "ea", false)
	if st := e.waitState(t, func(s State) bool { return !s.CarrierA }); !st.CarrierB {
		t.Errorf("state %+v: eb is down, ea's carrier off, eb's on", st)
	}
	ip(t, "-n", b, "link", "set", "eb", "up")
	waitCarrier(t, a, "ea", true)
	if mn := minRTT(t, a, "10.77.0.2", 3); mn < 0 {
		t.Error("no ping after the cable came back")
	}
}

// checkUnprivileged checks that every thread of pid has no capability.
func checkUnprivileged(t *testing.T, pid int) {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
	if len(tasks) == 0 {
		t.Fatalf("no threads for pid %d", pid)
	}
	for _, path := range tasks {
		st, err := reflector.ReadProcStatus(path)
		if err != nil {
			t.Fatal(err)
		}
		if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" {
			t.Errorf("%s: CapEff %s CapPrm %s, want 0", path, st["CapEff"], st["CapPrm"])
		}
	}
}
