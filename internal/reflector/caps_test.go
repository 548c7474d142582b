package reflector

import (
	"os"
	"os/exec"
	"strings"
	"testing"
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
