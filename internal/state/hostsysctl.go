package state

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

// ForgetGone drops the holds of labs that have no journal any more (a lab
// whose state directory was removed by hand): they hold nothing.
func (l *SysctlLedger) ForgetGone(exists func(lab string) bool) {
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
