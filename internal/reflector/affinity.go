package reflector

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/topology"
)

// SetAffinity restricts every thread of this process to cpus (a TUN's
// cpus: in the file, --cpus here), so the reflector keeps CPUs of its own
// and the program under test can be kept off them (taskset). A reflector
// sharing its CPUs with the iperf3 it serves moved 10 Gb/s at MTU 1500 here;
// on a CPU of its own, 12-16, run medians 12.3-15.2 (bench/reflector/bench.sh
// "TCP 1500 pin"), as the C reflector with the same offloads does.
//
// sched_setaffinity acts on one thread, and the Go runtime has started
// several before main; a thread it starts later inherits the mask of the
// thread that starts it. So every thread in /proc/self/task gets the mask,
// and the walk repeats until a pass finds none without it (one started
// during the walk by a thread not yet changed).
//
// Equivalent to: taskset -a -p -c CPUS PID
func SetAffinity(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for range 10 {
		tids, err := threads()
		if err != nil {
			return err
		}
		changed := false
		for _, tid := range tids {
			var cur unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &cur); err != nil {
				if errors.Is(err, unix.ESRCH) { // the thread exited
					continue
				}
				return fmt.Errorf("sched_getaffinity thread %d: %w", tid, err)
			}
			if cur == set {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue
				}
				// EINVAL: no CPU of the set is online or in this
				// process's cpuset.
				return fmt.Errorf("sched_setaffinity CPUs %s: %w", topology.FormatCPUList(cpus), err)
			}
			// A cpuset (cgroup) quietly narrows the mask to the CPUs it
			// allows; running on fewer CPUs than the file says is an error.
			if err := unix.SchedGetaffinity(tid, &cur); err == nil && cur != set {
				return fmt.Errorf("sched_setaffinity CPUs %s: the kernel gave CPUs %s (a cpuset limits this process)",
					topology.FormatCPUList(cpus), topology.FormatCPUList(members(&cur)))
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("sched_setaffinity: threads kept appearing without the mask")
}

// members lists the CPUs in set.
func members(set *unix.CPUSet) []int {
	var out []int
	for c := range topology.MaxCPU + 1 {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
