package kernel

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// HasAFXDP says whether Open vSwitch's afxdp port types can work for this
// process: it lists them when built with AF_XDP, not when they work. They
// need AF_XDP sockets (CONFIG_XDP_SOCKETS) and an XDP program on each port,
// which the kernel loads only for CAP_BPF (or CAP_SYS_ADMIN) in the machine's
// own user namespace: never in a user namespace of a user's (a rootless
// sandbox), whatever kernel.unprivileged_bpf_disabled says, since XDP
// programs are never unprivileged.
// Equivalent to: nothing in iproute2; socket(AF_XDP, SOCK_RAW, 0).
func HasAFXDP() bool { return NoAFXDP() == "" }

// NoAFXDP says why AF_XDP ports cannot work for this process; "" when they
// can.
func NoAFXDP() string {
	if InUserNamespace() {
		return "AF_XDP ports need an XDP program, which the kernel loads only for the machine's root, not for root of a user namespace (a rootless sandbox)"
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)"
	}
	unix.Close(fd)
	return ""
}

// InUserNamespace says whether this process runs in a user namespace other
// than the machine's: the machine's maps every uid to itself
// ("0 0 4294967295" in /proc/self/uid_map), any other maps fewer.
func InUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}
