package kernel

import "golang.org/x/sys/unix"

// HasAFXDP says whether the kernel opens AF_XDP sockets (CONFIG_XDP_SOCKETS),
// which Open vSwitch's afxdp port types need whatever it lists as supported:
// it lists them when built with AF_XDP, not when the kernel has it.
// Equivalent to: nothing in iproute2; socket(AF_XDP, SOCK_RAW, 0).
func HasAFXDP() bool {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
