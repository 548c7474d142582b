package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SysctlLedger is the machine's record of the host sysctls labs hold. Host
// settings are shared: three shipped labs set net.ipv4.ip_forward, and the
// first lab's down must not take it from the others. Each key has the
// machine's value before the first lab set it and the labs that hold it with
// the value each wants; the value goes back only when the last holder lets
// go. It lives beside the journals (one file, under its own lock) because
// no single lab's journal can say what the others hold.
type SysctlLedger struct {
	Keys map[string]*HeldSysctl `json:"keys"`
}

// HeldSysctl is one host sysctl held by labs.
type HeldSysctl struct {
	// Original is the machine's value before the first holder set it.
	Original string `json:"original"`
	// Holders maps each lab holding the key to the value it wants.
	Holders map[string]string `json:"holders"`
}

// Others returns the labs other than lab that hold key, with their values.
func (l *SysctlLedger) Others(key, lab string) map[string]string {
	h := l.Keys[key]
	if h == nil {
		return nil
	}
	out := map[string]string{}
	for other, v := range h.Holders {
		if other != lab {
			out[other] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Hold records that lab holds key at value; current is the machine's value
// now, which becomes the original when nobody held the key. It returns the
// original value, the one the last holder's release restores.
func (l *SysctlLedger) Hold(key, lab, value, current string) string {
	if l.Keys == nil {
		l.Keys = map[string]*HeldSysctl{}
	}
	h := l.Keys[key]
	if h == nil || len(h.Holders) == 0 {
		h = &HeldSysctl{Original: current, Holders: map[string]string{}}
		l.Keys[key] = h
	}
	h.Holders[lab] = value
	return h.Original
}

// Release lets go of lab's hold on key. restore is the value to write back
// when lab was the last holder (last is then true); fallback stands in for
// the original when the ledger has no record of the key (it was lost).
func (l *SysctlLedger) Release(key, lab, fallback string) (restore string, last bool) {
	h := l.Keys[key]
	if h == nil {
		return fallback, true
	}
	delete(h.Holders, lab)
	if len(h.Holders) > 0 {
		return "", false
	}
	delete(l.Keys, key)
	return h.Original, true
}

// forgetGone drops the holds of labs that have no journal any more (a lab
// whose state directory was removed by hand): they hold nothing.
func (l *SysctlLedger) forgetGone(exists func(lab string) bool) {
	for key, h := range l.Keys {
		for lab := range h.Holders {
			if !exists(lab) {
				delete(h.Holders, lab)
			}
		}
		if len(h.Holders) == 0 {
			delete(l.Keys, key)
		}
	}
}

func (s *Store) ledgerPath() string { return filepath.Join(s.Root, "host-sysctls.json") }

// ReadSysctls reads the ledger without locking it: what the labs held when
// it was last written, for planning. Changes go through Sysctls.
func (s *Store) ReadSysctls() (*SysctlLedger, error) {
	l := &SysctlLedger{Keys: map[string]*HeldSysctl{}}
	b, err := os.ReadFile(s.ledgerPath())
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host sysctl ledger: %w", err)
	}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("read host sysctl ledger %s: %w", s.ledgerPath(), err)
	}
	if l.Keys == nil {
		l.Keys = map[string]*HeldSysctl{}
	}
	l.forgetGone(s.Exists)
	return l, nil
}

// Sysctls runs change on the ledger under its lock and saves what change
// left (nothing is saved when change fails). The kernel write belongs
// inside change, so that the decision to restore a value and the write are
// one step no other lab's up or down can come between.
func (s *Store) Sysctls(change func(l *SysctlLedger) error) error {
	f, err := s.openLock(filepath.Join(s.Root, "locks", "host-sysctls.lock"))
	if err != nil {
		return fmt.Errorf("lock host sysctl ledger: %w", err)
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock host sysctl ledger: %w", err)
	}
	l, err := s.ReadSysctls()
	if err != nil {
		return err
	}
	if err := change(l); err != nil {
		return err
	}
	if len(l.Keys) == 0 {
		if err := os.Remove(s.ledgerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove host sysctl ledger: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save host sysctl ledger: %w", err)
	}
	return s.writeFile(s.ledgerPath(), append(b, '\n'))
}
