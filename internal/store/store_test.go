package store

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
)

func TestJournalRoundTrip(t *testing.T) {
	s := New(t.TempDir())
	j, err := s.Load("lab1")
	if err != nil || !j.Empty() || s.Exists("lab1") {
		t.Fatalf("missing journal: %+v, %v", j, err)
	}
	j.AddNamespace("b")
	j.AddNamespace("a")
	j.AddNamespace("a")
	j.AddHostLink("veth0")
	j.AddBridge("br0")
	j.SaveHostSysctl("net.ipv4.ip_forward", "0")
	j.SaveHostSysctl("net.ipv4.ip_forward", "1") // the first value wins
	if err := s.Save(j); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("lab1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Namespaces) != 2 || got.Namespaces[0] != "a" || got.HostSysctls["net.ipv4.ip_forward"] != "0" || got.Empty() {
		t.Errorf("round trip: %+v", got)
	}
	got.RemoveNamespace("a")
	got.RemoveNamespace("b")
	got.RemoveHostLink("veth0")
	got.RemoveBridge("br0")
	delete(got.HostSysctls, "net.ipv4.ip_forward")
	if !got.Empty() {
		t.Errorf("not empty after removals: %+v", got)
	}
	labs, err := s.Labs()
	if err != nil || len(labs) != 1 || labs[0] != "lab1" {
		t.Errorf("Labs = %v, %v", labs, err)
	}
	if err := s.Remove("lab1"); err != nil || s.Exists("lab1") {
		t.Errorf("Remove: %v", err)
	}
}

func TestJournalRejectsOtherLab(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Save(&state.Journal{Lab: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.Dir("x"), s.Dir("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("y"); err == nil {
		t.Error("a journal of lab x loaded as lab y")
	}
	if err := os.WriteFile(filepath.Join(s.Dir("y"), "journal.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("y"); err == nil {
		t.Error("a torn journal loaded without error")
	}
}

// The lab lock serialises holders; the OVS locks let users share and an
// idle check see them.
func TestLocks(t *testing.T) {
	s := New(t.TempDir())
	unlock, err := s.Lock("l")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	order := []string{}
	done := make(chan struct{})
	go func() {
		u, err := s.Lock("l")
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		order = append(order, "second")
		mu.Unlock()
		u()
		close(done)
	}()
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	order = append(order, "first")
	mu.Unlock()
	unlock()
	<-done
	if len(order) != 2 || order[0] != "first" {
		t.Errorf("lock order %v", order)
	}

	release, err := s.OVSUser()
	if err != nil {
		t.Fatal(err)
	}
	if _, idle, err := s.OVSIdle(); err != nil || idle {
		t.Errorf("OVSIdle with a user: idle=%v err=%v", idle, err)
	}
	release()
	rel, idle, err := s.OVSIdle()
	if err != nil || !idle {
		t.Fatalf("OVSIdle without users: idle=%v err=%v", idle, err)
	}
	rel()
}
