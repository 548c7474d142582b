package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/topology"
)

// reflectorProc is a reflector as `netlab status --json` shows it, once its
// stats file reports its queues.
type reflectorProc struct {
	PID    int    `json:"pid"`
	Spec   string `json:"spec"`
	Queues int    `json:"queues"`
}

func waitReflector(t *testing.T, lab, ns string) reflectorProc {
	t.Helper()
	var last string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		last = mustNetlab(t, "status", lab, "--json")
		var st []struct {
			Namespaces []struct {
				Name      string          `json:"name"`
				Processes []reflectorProc `json:"processes"`
			} `json:"namespaces"`
		}
		if err := json.Unmarshal([]byte(last), &st); err != nil {
			t.Fatal(err)
		}
		for _, n := range st[0].Namespaces {
			if n.Name == ns && len(n.Processes) == 1 && n.Processes[0].Queues > 0 {
				return n.Processes[0]
			}
		}
	}
	t.Fatalf("no reflector with queues in %s:\n%s", ns, last)
	return reflectorProc{}
}

// threadCPUs returns the Cpus_allowed_list of every thread of pid.
func threadCPUs(t *testing.T, pid int) map[string]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	out := map[string]string{}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				out[f] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// TestTunExtraReflectorCPUs: a reflector with cpus runs every thread on
// those CPUs, with one queue per CPU by default, and still reflects;
// changing cpus restarts it on the new ones; a CPU that is not online is
// refused with the file's line and changes nothing.
func TestTunExtraReflectorCPUs(t *testing.T) {
	requireRoot(t)
	online, err := kernel.OnlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	last := online[len(online)-1]
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	lab := func(cpus string) string {
		return fmt.Sprintf(`name: tunx-cpus
namespaces:
  refl:
    tuns:
      tun0:
        reflector: true
        cpus: %s
        addresses: [10.0.0.1/8]
`, cpus)
	}
	file := writeFile(t, dir, "cpus.yaml", lab(fmt.Sprintf("[%d]", last)))
	labUp(t, file, p, "tunx-cpus")
	name, refl := p+"tunx-cpus", p+"refl"

	check := func(wantCPUs string, wantQueues int) reflectorProc {
		t.Helper()
		r := waitReflector(t, name, refl)
		if !strings.Contains(r.Spec, "--cpus ") || r.Queues != wantQueues {
			t.Errorf("reflector spec %q, %d queues; want --cpus and %d queues", r.Spec, r.Queues, wantQueues)
		}
		for task, cpus := range threadCPUs(t, r.PID) {
			if cpus != wantCPUs {
				t.Errorf("%s: Cpus_allowed_list %s, want %s", task, cpus, wantCPUs)
			}
		}
		ping(t, refl, "10.0.0.41")
		return r
	}
	first := check(fmt.Sprint(last), 1)

	// All online CPUs: a new process, one queue per CPU (at most 8).
	all := make([]string, len(online))
	for i, c := range online {
		all[i] = fmt.Sprint(c)
	}
	writeFile(t, dir, "cpus.yaml", lab("["+strings.Join(all, ", ")+"]"))
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	second := check(topology.FormatCPUList(online), min(len(online), topology.MaxQueues))
	if len(online) > 1 && second.PID == first.PID {
		t.Errorf("cpus changed but the reflector %d was not restarted", first.PID)
	}
	if len(alive([]int{first.PID})) != 0 && second.PID != first.PID {
		t.Errorf("the old reflector %d still runs", first.PID)
	}

	// A CPU this machine does not have: exit 2 with the place, and the
	// running reflector is left alone.
	writeFile(t, dir, "cpus.yaml", lab("[1023]"))
	r := netlab(t, "up", "-q", "--prefix", p, file)
	if r.code != 2 || !strings.Contains(r.out, "cpus.yaml:7:15: namespaces.refl.tuns.tun0.cpus: CPU 1023 is not online on this machine") {
		t.Errorf("up with cpus [1023]: exit %d\n%s", r.code, r.out)
	}
	if got := waitReflector(t, name, refl); got.PID != second.PID {
		t.Errorf("a refused up replaced the reflector %d with %d", second.PID, got.PID)
	}

	mustNetlab(t, "down", name)
	if len(alive([]int{second.PID})) != 0 {
		t.Errorf("reflector %d still runs after down", second.PID)
	}
	sameHost(t, before)
}
