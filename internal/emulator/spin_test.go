package emulator

import (
	"testing"
	"time"
)

// The scheduler spins before departures only within its budget of each
// second; a new second gives the budget back.
func TestSpinBudget(t *testing.T) {
	p := &pump{}
	if !p.spinLeft(0) {
		t.Fatal("no budget at the start")
	}
	p.spin = spinBudget - time.Microsecond
	if !p.spinLeft(500 * time.Millisecond) {
		t.Error("no budget left before it is spent")
	}
	p.spin = spinBudget
	if p.spinLeft(999 * time.Millisecond) {
		t.Error("budget left once spent, within the same second")
	}
	if !p.spinLeft(time.Second) {
		t.Error("no budget in the next second")
	}
	if p.spin != 0 || p.spinFrom != time.Second {
		t.Errorf("spin %v from %v after the new second; want 0 from 1s", p.spin, p.spinFrom)
	}
}
