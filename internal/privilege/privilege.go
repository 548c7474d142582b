// Package privilege notices a netlab that the kernel gave privileges when it
// was started by a user other than root (file capabilities from setcap, a
// setuid or setgid bit) and sheds them before netlab does anything else.
//
// Such a binary is one file every user of the machine may run. Its
// capabilities would reach the machine's whole network stack, so every lab
// on the machine (root's, other users'), and netlab takes its state
// directory, its sandbox and helper programs from the environment
// (NETLAB_ROOT, NETLAB_SANDBOX, NETLAB_BIN, ...), which the user chooses.
// Once shed, the process is what the same binary without the privileges
// would be for that user: an ordinary user's netlab, whose labs live in
// their sandbox.
package privilege

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Elevation is what the kernel gave this process at exec beyond its real
// user's own powers.
type Elevation struct {
	// UID is the real user the process was started by, and acts for.
	UID int
	// Capabilities: the permitted set was not empty (file capabilities,
	// or a setuid-root bit, which grants every capability).
	Capabilities bool
	// SetID: the effective or saved uid or gid differed from the real one
	// (a setuid or setgid bit).
	SetID bool
}

// Notice is the one line that tells the user the binary's privileges are
// not used, and where their labs are instead. exe is the binary's path.
func (e *Elevation) Notice(exe string) string {
	what, they := "the file capabilities of "+exe+" are", "they"
	if e.SetID {
		what, they = "the setuid/setgid bit of "+exe+" is", "it"
	}
	return fmt.Sprintf("%s not used for uid %d: %s would let any user reach every lab on this machine; your labs live in your sandbox (netlab doctor)", what, e.UID, they)
}

// credentials are the parts of a process's credentials that say whether
// exec elevated it.
type credentials struct {
	// secure is AT_SECURE from the auxiliary vector: the kernel set it
	// because exec gave the process more than its caller had (set-id bits,
	// file capabilities that grew the permitted set of a non-root user).
	// secureKnown is false when the vector could not be read.
	secure, secureKnown bool
	ruid, euid, suid    int
	rgid, egid, sgid    int
	permitted           uint64
}

// elevation says what of c exec gave and this package sheds; nil for none.
// Root's process is left alone: it has root's powers whatever the binary's
// bits. Without AT_SECURE, capabilities a non-root process holds are the
// ones its parent passed on (ambient capabilities a service manager gave,
// for instance): root granted them to that process, not to every user, and
// they stay. When the auxiliary vector could not be read, any privilege of
// a non-root process counts as exec's: shedding too much is the safe side.
func (c credentials) elevation() *Elevation {
	if c.ruid == 0 || c.secureKnown && !c.secure {
		return nil
	}
	e := &Elevation{
		UID:          c.ruid,
		Capabilities: c.permitted != 0,
		SetID:        c.euid != c.ruid || c.suid != c.ruid || c.egid != c.rgid || c.sgid != c.rgid,
	}
	if !e.Capabilities && !e.SetID {
		// AT_SECURE for another reason (a security module's transition):
		// nothing of netlab's concern to shed.
		return nil
	}
	return e
}

// atSecure is AT_SECURE, the auxiliary vector's key (linux/auxvec.h).
const atSecure = 23

// secureFromAuxv finds AT_SECURE in the auxiliary vector's key/value pairs;
// known is false when it is not there.
func secureFromAuxv(auxv [][2]uintptr) (secure, known bool) {
	for _, kv := range auxv {
		if kv[0] == atSecure {
			return kv[1] != 0, true
		}
	}
	return false, false
}

// readCredentials reads this process's credentials.
func readCredentials() (credentials, error) {
	var c credentials
	if auxv, err := unix.Auxv(); err == nil {
		c.secure, c.secureKnown = secureFromAuxv(auxv)
	}
	c.ruid, c.euid, c.suid = unix.Getresuid()
	c.rgid, c.egid, c.sgid = unix.Getresgid()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return c, fmt.Errorf("capget: %w", err)
	}
	c.permitted = uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)
	return c, nil
}

// Shed gives up what exec gave this process beyond its real user's powers,
// when that user is not root, and returns what it gave up (nil: nothing was
// given). Call it first thing in main: the Go runtime has started threads
// by then, so each step below acts on every thread (capset(2) and
// PR_SET_NO_NEW_PRIVS are per thread in the kernel). It
//
//   - sets the effective and saved uid and gid back to the real ones (a
//     setuid or setgid bit; Go's syscall.Setresuid acts on all threads);
//   - empties the effective, permitted and inheritable capability sets on
//     every thread (libcap's SetProc, through psx), which empties the
//     ambient set too (the kernel keeps it within permitted and
//     inheritable);
//   - sets no_new_privs on every thread, so nothing netlab execs (itself as
//     a sandbox's keeper or init, nsenter, ip netns exec, reflectors, the
//     user's command) gets the file capabilities or set-id bits again;
//   - makes the process dumpable again: the kernel made it undumpable
//     because exec changed its credentials, which leaves /proc/self (and
//     the /proc files of the children it forks, a new user namespace's
//     uid_map among them) to root, and a rootless sandbox could not be
//     made;
//   - then checks every thread in /proc/self/task.
//
// An error means some of it may not have happened: the caller must stop.
//
// Equivalent to: `setpriv --reuid=$UID --regid=$GID --inh-caps=-all
// --ambient-caps=-all --no-new-privs` before running the rest of the
// program, and prctl(PR_SET_DUMPABLE, 1).
func Shed() (*Elevation, error) {
	c, err := readCredentials()
	if err != nil {
		return nil, fmt.Errorf("privileges given at exec: %w", err)
	}
	e := c.elevation()
	if e == nil {
		return nil, nil
	}
	if err := shed(c); err != nil {
		return e, fmt.Errorf("shed privileges given at exec to uid %d: %w", c.ruid, err)
	}
	return e, nil
}

func shed(c credentials) error {
	// The group first: once the uid is the user's, there may be no power
	// left to change it.
	if c.egid != c.rgid || c.sgid != c.rgid {
		if err := syscall.Setresgid(c.rgid, c.rgid, c.rgid); err != nil {
			return fmt.Errorf("setresgid %d: %w", c.rgid, err)
		}
	}
	if c.euid != c.ruid || c.suid != c.ruid {
		if err := syscall.Setresuid(c.ruid, c.ruid, c.ruid); err != nil {
			return fmt.Errorf("setresuid %d: %w", c.ruid, err)
		}
	}
	if err := cap.NewSet().SetProc(); err != nil {
		return fmt.Errorf("capset (empty): %w", err)
	}
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("prctl PR_SET_NO_NEW_PRIVS: %w", errno)
	}
	// Dumpable is a property of the process (its memory), not a thread's.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	return checkThreads(c.ruid, c.rgid)
}

// checkThreads fails unless every thread of the process has no capability
// in any set, has no_new_privs, and has uid and gid as its only ids; and the
// process is dumpable.
func checkThreads(uid, gid int) error {
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 1 {
		return fmt.Errorf("not dumpable after PR_SET_DUMPABLE (%d, %v)", d, err)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("list threads: %v", err)
	}
	for _, path := range tasks {
		st, err := readStatus(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			return err
		}
		if err := unprivileged(st, uid, gid); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// unprivileged checks one thread's status (the fields of
// /proc/PID/task/TID/status).
func unprivileged(st map[string]string, uid, gid int) error {
	for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb"} {
		if v := st[k]; strings.Trim(v, "0") != "" || v == "" {
			return fmt.Errorf("%s is %q after the shed", k, v)
		}
	}
	if st["NoNewPrivs"] != "1" {
		return fmt.Errorf("NoNewPrivs is %q after the shed", st["NoNewPrivs"])
	}
	for k, id := range map[string]int{"Uid": uid, "Gid": gid} {
		want := strings.Repeat(fmt.Sprint(id)+" ", 4)
		if got := strings.Join(strings.Fields(st[k]), " ") + " "; got != want {
			return fmt.Errorf("%s is %q after the shed, want %d for all four", k, st[k], id)
		}
	}
	return nil
}

// readStatus parses a /proc status file into its "Key:\tvalue" pairs.
func readStatus(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseStatus(string(b)), nil
}

// parseStatus parses the text of a /proc status file.
func parseStatus(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
