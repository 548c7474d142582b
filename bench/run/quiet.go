package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// quietBusy is how busy the machine's CPUs may be, over quietWindow, for a
// timed step to start; quietMax bounds the wait.
const (
	quietBusy   = 0.15
	quietWindow = 100 * time.Millisecond
	quietMax    = 5 * time.Second
)

// waitQuiet waits until the machine's CPUs are idle: the work a step
// leaves the kernel and daemons (a world's namespaces freed after it ends,
// ovs-vswitchd reconfiguring after ports came or went) would otherwise
// land in whichever step runs next, netlab's or the floor's. Best effort:
// on a machine that never quiets it returns after quietMax.
func waitQuiet() {
	deadline := time.Now().Add(quietMax)
	prevBusy, prevAll, err := cpuTicks()
	if err != nil {
		time.Sleep(300 * time.Millisecond)
		return
	}
	for time.Now().Before(deadline) {
		time.Sleep(quietWindow)
		busy, all, err := cpuTicks()
		if err != nil {
			return
		}
		if all > prevAll && float64(busy-prevBusy)/float64(all-prevAll) < quietBusy {
			return
		}
		prevBusy, prevAll = busy, all
	}
}

// cpuTicks reads the machine's CPU time from /proc/stat: busy (all but
// idle and iowait) and all, in ticks.
func cpuTicks() (busy, all uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: %q", sc.Text())
	}
	// user nice system idle iowait irq softirq steal: guest and
	// guest_nice after them are counted in user and nice already.
	for i, f := range fields[1:min(len(fields), 9)] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q", sc.Text())
		}
		all += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, all, nil
}
