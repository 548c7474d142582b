package supervise

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netlab-dev/netlab/internal/emulator"
	"github.com/netlab-dev/netlab/internal/store"
)

// An emulator started by a run killed before the emulator wrote its first
// state (the next up finds it running and gives it the file's model) is
// waited for, not taken for broken. The emulator here is a shell named
// netlab running a script named emulate: what the supervisor checks of a
// process (its executable's name, its arguments) is what a real one has.
func TestReloadWaitsForFirstState(t *testing.T) {
	dir := t.TempDir()
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "netlab")
	if err := os.WriteFile(fake, sh, 0o755); err != nil {
		t.Fatal(err)
	}
	st := store.New(filepath.Join(dir, "root"))
	s := New(st, "reload", nil)
	base := procBase(s.dir(), "h1", "radio")
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	// First state after 300 ms; on SIGHUP, the generation of the model file.
	script := `trap 'sed -n "s/.*\"generation\": *\([0-9]*\).*/{\"generation\": \1}/p" "$BASE.model.json" > "$BASE.tmp" && mv "$BASE.tmp" "$BASE.stats.json"' HUP
sleep 0.3
printf '{"generation": 1}' > "$BASE.tmp" && mv "$BASE.tmp" "$BASE.stats.json"
while :; do sleep 0.05; done
`
	if err := os.WriteFile(filepath.Join(dir, "emulate"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, "emulate", "--ns", "h1", "--dev", "radio")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE="+base)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := os.WriteFile(base+".pid", []byte(fmt.Sprintf("%d h1 radio\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload("h1", "radio", &emulator.ModelFile{}); err != nil {
		t.Fatalf("Reload of an emulator that has not written its first state yet: %v", err)
	}
	got, err := emulator.ReadState(base + ".stats.json")
	if err != nil || got.Generation != 2 {
		t.Errorf("state after Reload: generation %d (%v), want 2", got.Generation, err)
	}
}
