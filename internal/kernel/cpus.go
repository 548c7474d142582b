package kernel

import (
	"fmt"
	"os"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// OnlineCPUs returns the machine's online CPUs, sorted, from
// /sys/devices/system/cpu/online: the CPUs a reflector's cpus may name.
//
// Equivalent to: cat /sys/devices/system/cpu/online
func OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	cpus, err := topology.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("online CPUs: /sys/devices/system/cpu/online: %w", err)
	}
	return cpus, nil
}
