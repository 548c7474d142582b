package reflector

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/cap"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// DropAllCapabilities gives up every privilege the process holds, on every
// one of its threads, for good: call it after the TUN queues and sockets are
// open (open fds keep working). It
//
//   - enters libcap's "NOPRIV" mode: clears the inheritable and ambient sets,
//     empties the bounding set, and locks the securebits that stop uid 0 from
//     regaining capabilities (SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, ...);
//   - clears the effective and permitted sets (cap.NewSet().SetProc());
//   - sets no_new_privs (prctl PR_SET_NO_NEW_PRIVS), so no execve can grant
//     anything again;
//   - then checks every thread in /proc/self/task.
//
// capset(2) and prctl(2) act on the calling thread only, and the Go runtime
// treats threads as interchangeable, so each call goes through libcap's psx,
// which runs it on all threads: syscall.AllThreadsSyscall when built without
// cgo, and libpsx's signal-based mechanism with cgo (where
// AllThreadsSyscall returns ENOTSUP, e.g. under -race).
//
// Equivalent to: `capsh --mode=NOPRIV` then running the rest of the program.
func DropAllCapabilities() error {
	// Needs CAP_SETPCAP for the bounding set and securebits; without it (a
	// process already unprivileged) the mode switch fails but the steps
	// below still take whatever is left.
	modeErr := cap.ModeNoPriv.Set()
	if err := cap.NewSet().SetProc(); err != nil {
		return fmt.Errorf("drop capabilities: %w", errors.Join(modeErr, err))
	}
	if _, _, errno := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); errno != 0 {
		return fmt.Errorf("drop capabilities: prctl PR_SET_NO_NEW_PRIVS: %w", errno)
	}
	if err := checkThreadsUnprivileged(); err != nil {
		return fmt.Errorf("drop capabilities: %w", errors.Join(modeErr, err))
	}
	return nil
}

// checkThreadsUnprivileged reads /proc/self/task/*/status and fails if a
// thread still has an effective or permitted capability or lacks
// no_new_privs.
func checkThreadsUnprivileged() error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("list threads: %v", err)
	}
	for _, path := range tasks {
		st, err := ReadProcStatus(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return err
		}
		for _, k := range []string{"CapEff", "CapPrm", "CapAmb"} {
			if v := st[k]; v != "0000000000000000" {
				return fmt.Errorf("%s: %s is %s after the drop", path, k, v)
			}
		}
		if st["NoNewPrivs"] != "1" {
			return fmt.Errorf("%s: NoNewPrivs is %q after the drop", path, st["NoNewPrivs"])
		}
	}
	return nil
}

// ReadProcStatus parses a /proc/<pid>[/task/<tid>]/status file into its
// "Key:\tvalue" pairs (e.g. "CapEff" → "0000000000000000").
func ReadProcStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return m, nil
}
