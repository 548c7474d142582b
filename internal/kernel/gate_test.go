package kernel

import (
	"sync/atomic"
	"testing"
	"time"
)

// A disable_ipv6 write (alone) waits until no other veth request of the
// run holds the gate, and none starts while it runs; the caller holds the
// gate shared again afterwards.
func TestRTNLGateAlone(t *testing.T) {
	g := &rtnlGate{}
	var inside atomic.Int32 // requests holding the gate shared, the caller's aside
	other := make(chan struct{})
	release := make(chan struct{})
	go func() {
		g.enter()
		inside.Add(1)
		close(other)
		<-release
		inside.Add(-1)
		g.leave()
	}()
	<-other

	g.enter()
	ran := make(chan int32)
	go func() {
		g.alone(func() error {
			ran <- inside.Load()
			return nil
		})
		// Shared again: a writer waits for it.
		locked := make(chan struct{})
		go func() { g.mu.Lock(); close(locked); g.mu.Unlock() }()
		select {
		case <-locked:
			t.Error("the caller did not hold the gate shared again after alone")
		case <-time.After(50 * time.Millisecond):
		}
		g.leave()
		<-locked
		close(ran)
	}()
	select {
	case n := <-ran:
		t.Fatalf("alone ran while %d other request(s) held the gate", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if n := <-ran; n != 0 {
		t.Errorf("alone ran while %d other request(s) held the gate", n)
	}
	<-ran

	// A namespace opened alone has no gate: alone just runs.
	var none *rtnlGate
	none.enter()
	called := false
	none.alone(func() error { called = true; return nil })
	none.leave()
	if !called {
		t.Error("alone on no gate did not run its function")
	}
}
