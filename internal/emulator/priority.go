package emulator

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Priority is how the emulator asks the kernel to run it ahead of the
// programs whose packets it carries: a link that waits for a CPU delays
// every frame on it, and the programs of a test keep the CPUs busy.
type Priority string

// PriorityEnv names the environment variable that sets the priority of
// the emulators a netlab process starts (they inherit its environment).
const PriorityEnv = "NETLAB_EMULATE_PRIORITY"

const (
	// PriorityRealtime is SCHED_FIFO one above the lowest real-time
	// priority: the emulator runs as soon as a frame is due, ahead of
	// programs that run real-time at the lowest (a test's prober, say),
	// which at an equal priority would hold a due frame until they block.
	// Its work per frame is bounded (it never spins), and the kernel's
	// real-time throttling (sched_rt_runtime_us) keeps 5 % of each CPU for
	// others anyway.
	PriorityRealtime Priority = "realtime"
	// PriorityHigh is nice -10.
	PriorityHigh Priority = "high"
	// PriorityNormal leaves the emulator as it was started.
	PriorityNormal Priority = "normal"
)

// realtimePriority is PriorityRealtime's SCHED_FIFO priority.
const realtimePriority = 2

// raisePriority gives every thread of the process the priority asked, or
// the best below it that is allowed (real time and a negative nice need
// CAP_SYS_NICE in the machine's user namespace: not in a rootless
// sandbox). It returns what it got. Threads the runtime starts later
// inherit the setting of the thread that starts them.
//
// Equivalent to: chrt -f -a -p 2 PID, or renice -n -10 for each thread.
func raisePriority(want Priority) (Priority, error) {
	if want == PriorityRealtime {
		err := eachThread(func(tid int) error {
			return unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: realtimePriority}, 0)
		})
		if err == nil {
			return PriorityRealtime, nil
		}
		if !errors.Is(err, unix.EPERM) {
			return PriorityNormal, err
		}
		want = PriorityHigh
	}
	if want == PriorityHigh {
		err := eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, -10) })
		if err == nil {
			return PriorityHigh, nil
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EACCES) {
			return PriorityNormal, err
		}
	}
	return PriorityNormal, nil
}

// eachThread runs set on every thread of the process, again until a pass
// meets no thread it has not set (one may start meanwhile).
func eachThread(set func(tid int) error) error {
	done := map[int]bool{}
	for range 10 {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list threads: %w", err)
		}
		fresh := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := set(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
			done[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
	return errors.New("threads kept appearing")
}
