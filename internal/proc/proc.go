// Package proc ends processes netlab is responsible for, by PID only: the
// processes inside a lab's namespaces and netlab's supervised reflectors.
package proc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// Alive returns the pids that exist and are not zombies (a zombie has
// exited; its parent has not reaped it yet).
func Alive(pids []int) []int {
	var out []int
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The state is the field after the parenthesised command name.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// Name is the process's command name, "?" if it is gone.
func Name(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// Stop sends SIGTERM to the pids, SIGKILL to those still alive after grace,
// and waits up to grace again. It returns the pids that did not stop.
func Stop(pids []int, grace time.Duration) []int {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	wait(pids, grace)
	for _, pid := range Alive(pids) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	wait(pids, grace)
	return Alive(pids)
}

func wait(pids []int, d time.Duration) {
	for deadline := time.Now().Add(d); len(Alive(pids)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// StartTime is the process's start time in clock ticks after boot (field 22
// of /proc/PID/stat): with the PID, it names one process for good, since a
// PID is reused only by a process started later. ok is false when the
// process is gone or a zombie.
func StartTime(pid int) (ticks uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	// After "pid (comm) ": state is field 3, starttime field 22.
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return 0, false
	}
	if _, err := fmt.Sscan(f[19], &ticks); err != nil {
		return 0, false
	}
	return ticks, true
}
