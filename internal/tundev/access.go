package tundev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Access is what CheckAccess found: whether this process opens
// /dev/net/tun, and who else may, by the file's mode and owner.
type Access struct {
	Opens   bool  // this process opened it (and closed it again)
	Err     error // the open's error, when it did not open
	Missing bool  // there is no /dev/net/tun
	// Mode is the file's permission bits (0666 where the stock udev
	// rule of Debian and Ubuntu made it); UID and GID its owner and group.
	Mode     uint32
	UID, GID uint32
	// EUID is this process's effective uid.
	EUID int
}

// CheckAccess tries to open /dev/net/tun, which TUN reflectors, TAP
// devices, their unprivileged owners (netlab tap-mac, a VM) and Open
// vSwitch's userspace datapath (its bridges' internal ports are TAPs) all
// need, and reads its mode and owner. Root opens it whatever its mode; in
// a user namespace that is not the machine's, and for any other user, only
// the mode lets a process in.
//
// Equivalent to: `ls -l /dev/net/tun` and an open of it.
func CheckAccess() Access {
	a := Access{EUID: os.Geteuid()}
	var st unix.Stat_t
	if err := unix.Stat(Path, &st); err == nil {
		a.Mode, a.UID, a.GID = st.Mode&0o7777, st.Uid, st.Gid
	}
	fd, err := unix.Open(Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		a.Err = err
		a.Missing = errors.Is(err, unix.ENOENT)
		return a
	}
	unix.Close(fd)
	a.Opens = true
	return a
}

// Everyone says the mode lets every user read and write the device (as
// 0666 does): a TAP's non-root owner and a rootless sandbox need that.
func (a Access) Everyone() bool { return a.Mode&0o006 == 0o006 }

// Why says in one line why this process cannot open the device; "" when
// it can.
func (a Access) Why() string {
	switch {
	case a.Opens:
		return ""
	case a.Missing:
		return Path + " is missing"
	case errors.Is(a.Err, unix.EACCES):
		return fmt.Sprintf("%s has mode %04o (owner uid %d, group gid %d) and this user (uid %d) cannot open it", Path, a.Mode, a.UID, a.GID, a.EUID)
	case errors.Is(a.Err, unix.ENXIO) || errors.Is(a.Err, unix.ENODEV):
		return fmt.Sprintf("%s does not open: %v (this kernel has no TUN/TAP driver)", Path, a.Err)
	case errors.Is(a.Err, unix.EPERM):
		return fmt.Sprintf("%s does not open for this process: %v (whatever its mode %04o: a container's device rules or a security module forbid it)", Path, a.Err, a.Mode)
	}
	return fmt.Sprintf("%s does not open: %v", Path, a.Err)
}

// Fix says what would let every user open the device, or this process
// when something other than the mode stops it; "" when nothing is to be
// done.
func (a Access) Fix() string {
	switch {
	case a.Missing:
		return "sudo mkdir -p /dev/net && sudo mknod -m 0666 /dev/net/tun c 10 200 (in a container: pass the device in)"
	case errors.Is(a.Err, unix.ENXIO) || errors.Is(a.Err, unix.ENODEV):
		return "a kernel with CONFIG_TUN"
	case errors.Is(a.Err, unix.EPERM):
		return "in a container: allow and pass in the character device 10:200; else run netlab on the machine"
	case (a.Opens || errors.Is(a.Err, unix.EACCES)) && !a.Everyone():
		return "the stock udev rule of Debian and Ubuntu makes it 0666 (KERNEL==\"tun\", MODE=\"0666\"); on this machine: sudo chmod 0666 /dev/net/tun, and a rule in /etc/udev/rules.d/ to keep it"
	}
	return ""
}
