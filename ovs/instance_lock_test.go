package ovs

import (
	"testing"
	"time"
)

// TestWaitStarter: connect waits while another process holds the run
// directory's lock (starting the instance), and not otherwise.
func TestWaitStarter(t *testing.T) {
	dir := t.TempDir()
	if waitStarter(dir, time.Minute) {
		t.Error("waited with no lock file")
	}
	unlock, err := lockDir(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() { done <- waitStarter(dir, time.Minute) }()
	select {
	case <-done:
		t.Fatal("returned while the lock was held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	if waited := <-done; !waited {
		t.Error("says it did not wait")
	}
	if waitStarter(dir, time.Minute) {
		t.Error("waited for a lock nobody holds")
	}
	// Bounded: a holder that never lets go is waited for d at most.
	unlock, err = lockDir(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if !waitStarter(dir, 20*time.Millisecond) {
		t.Error("says it did not wait for a held lock")
	}
}
