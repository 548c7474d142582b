package topology

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseCPUList parses the kernel's CPU list format ("0-3,6,8-9", as in
// /sys/devices/system/cpu/online, cpuset.cpus and taskset -c) into sorted
// CPU numbers, each once. The empty string is the empty list.
func ParseCPUList(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuNumber(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = cpuNumber(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("CPU range %q runs backwards", part)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	out := make([]int, 0, len(seen))
	for c := range maxCPUs {
		if seen[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// FormatCPUList writes sorted, distinct CPU numbers as ParseCPUList reads
// them, with ranges: [0 1 2 5] is "0-2,5".
func FormatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// maxCPUs is the number of CPUs a cpu_set_t holds (CPU_SETSIZE): 0..1023.
const maxCPUs = MaxCPU + 1

func cpuNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= maxCPUs || strings.TrimSpace(s) != s || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("bad CPU number %q (want 0..%d)", s, maxCPUs-1)
	}
	return n, nil
}
