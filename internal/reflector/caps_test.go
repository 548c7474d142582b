package reflector

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDropAllCapabilitiesAllThreads(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), reexecEnv+"=caps")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("child: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Errorf("only %d threads reported, want at least 5:\n%s", len(lines), out)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("bad line %q", l)
		}
		if f[1] != "0000000000000000" || f[2] != "0000000000000000" {
			t.Errorf("thread %s: CapEff %s CapPrm %s, want 0", f[0], f[1], f[2])
		}
		if os.Geteuid() == 0 && f[3] != "0000000000000000" {
			t.Errorf("thread %s: CapBnd %s, want 0", f[0], f[3])
		}
		if f[4] != "1" {
			t.Errorf("thread %s: NoNewPrivs %s, want 1", f[0], f[4])
		}
	}
	t.Logf("threads after drop:\n%s", out)
}

// TestSetAffinityAllThreads: every thread of the process, those the Go
// runtime had started before and those it starts after, runs on the CPUs
// --cpus names.
func TestSetAffinityAllThreads(t *testing.T) {
	var mine unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mine); err != nil {
		t.Fatal(err)
	}
	last := -1
	for c := range 1024 {
		if mine.IsSet(c) {
			last = c
		}
	}
	want := strconv.Itoa(last)
	cmd := exec.Command(os.Args[0], want)
	cmd.Env = append(os.Environ(), reexecEnv+"=affinity")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 7 {
		t.Errorf("only %d threads reported, want at least 7:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) != 2 || f[1] != want {
			t.Errorf("thread %q: want Cpus_allowed_list %s", l, want)
		}
	}

	// A CPU that does not exist: a clear error, exit 1.
	if mine.IsSet(1023) {
		t.Skip("this machine has CPU 1023")
	}
	cmd = exec.Command(os.Args[0], "1023")
	cmd.Env = append(os.Environ(), reexecEnv+"=affinity")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sched_setaffinity CPUs 1023: invalid argument") {
		t.Errorf("CPU 1023: %v\n%s", err, out)
	}
}
