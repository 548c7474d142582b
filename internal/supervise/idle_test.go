package supervise

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netlab-dev/netlab/internal/store"
)

// Idle is false while any pidfile of a process netlab started is there: a
// reflector's or emulator's, a service's, a timeline runner's.
func TestIdle(t *testing.T) {
	st := store.New(t.TempDir())
	s := New(st, "idle", nil)
	if !s.Idle() {
		t.Fatal("a lab with no directory is not idle")
	}
	dir := st.Dir("idle")
	for _, pidfile := range []string{
		filepath.Join(dir, "proc", "h1-tun0.pid"),
		filepath.Join(dir, "services", "h1", "web.pid"),
		filepath.Join(TimelinesDir(dir), "flap.pid"),
	} {
		if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pidfile, []byte("1 2 3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if s.Idle() {
			t.Errorf("idle with %s", pidfile)
		}
		if err := os.Remove(pidfile); err != nil {
			t.Fatal(err)
		}
		if !s.Idle() {
			t.Errorf("not idle once %s is gone", pidfile)
		}
	}
}
