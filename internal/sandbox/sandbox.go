// Package sandbox makes the places labs live in when they do not live in the
// machine's own network stack. A sandbox is a network namespace that plays
// the lab's host, with a mount namespace of its own (a private /run, so
// /run/netns, netlab's journals and its private Open vSwitch are the
// sandbox's) and a PID namespace of its own (a private /proc; when its first
// process ends, the kernel ends every other one). For a user without root it
// is also a user namespace owned by that user, mapping them to root inside.
//
// A sandbox is a place the engine is started in, not a second engine: the
// code here only creates those namespaces and starts a program inside (the
// netlab command, or a test binary run again). The first process of a
// sandbox, its init, is this same program started again with an
// environment variable that this package's init function recognises before
// main runs (see init.go).
//
// Equivalent to: `unshare --user --map-root-user --net --mount --pid --fork
// --mount-proc` plus a tmpfs on /run and a fresh sysfs on /sys.
package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Environment variables: envInit marks this program's init role (its value
// is the role); EnvInside is set in every process a sandbox starts, to the
// sandbox's name.
const (
	envInit   = "NETLAB_SANDBOX_INIT"
	EnvInside = "NETLAB_IN_SANDBOX"
)

// Roles of a sandbox's init.
const (
	roleRun    = "run"    // run a command (this program again), exit with its status
	roleKeeper = "keeper" // hold the sandbox until killed; commands join it with nsenter
	roleProbe  = "probe"  // set up and exit: doctor's check that sandboxes work
)

// Inside returns the name of the sandbox this process was started in by
// this package, "" when it was not.
func Inside() string { return os.Getenv(EnvInside) }

// Privileged says whether this process may change its network stack
// itself: it has CAP_NET_ADMIN and CAP_SYS_ADMIN (root, or a process root
// gave them; a netlab elevated by file capabilities sheds them for anyone
// but root before it gets here, see internal/privilege).
func Privileged() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	const want = 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_SYS_ADMIN
	return data[0].Effective&want == want
}

// NeedsUserNamespace says whether a sandbox made by this process needs a
// user namespace of its own: anyone but root with its capabilities needs
// the capabilities a user namespace gives to make network and mount
// namespaces (and to let nsenter, which has no file capabilities, join
// them). Root inside a sandbox's user namespace is root there, and needs
// none.
func NeedsUserNamespace() bool { return os.Geteuid() != 0 || !Privileged() }

// sysProcAttr returns the clone settings of a sandbox's init. With userns,
// the caller's uid and gid become root inside (a single-id map, which an
// unprivileged process may write itself: no newuidmap). Setgroups is denied,
// as the kernel requires before an unprivileged gid map.
func sysProcAttr(userns bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
	}
	if userns {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
	}
	return a
}

// self is the program to start again as a sandbox's init.
func self() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("sandbox: find this program: %w", err)
	}
	return exe, nil
}

// Run runs this program again, with the same arguments, inside a fresh
// sandbox, and returns its exit status (128+N when signal N ended it). Its
// standard streams are this process's. The sandbox goes when the program
// ends, with every process in it; if this process dies first, the kernel
// kills the sandbox's init (parent-death signal), so nothing outlives it.
// name is what EnvInside says inside.
func Run(name string) (int, error) {
	exe, err := self()
	if err != nil {
		return 0, err
	}
	return run(name, exe, os.Args, os.Environ())
}

func run(name, exe string, argv, env []string) (int, error) {
	userns := NeedsUserNamespace()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	defer ready.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        argv,
		Env:         append(withoutEnv(env, envInit, EnvInside), envInit+"="+roleRun, EnvInside+"="+name),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{readyW},
		SysProcAttr: sysProcAttr(userns),
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// The parent-death signal fires when the thread that forked ends, not
	// the process: fork from a locked thread that lives until the wait.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return 0, &Error{Op: "create", Err: err, UserNS: userns}
	}
	if err := readReady(ready); err != nil {
		cmd.Wait()
		return 0, &Error{Op: "set up", Err: err, UserNS: userns}
	}
	err = cmd.Wait()
	return exitCode(cmd, err)
}

// exitCode turns a finished command into a shell-style status.
func exitCode(cmd *exec.Cmd, err error) (int, error) {
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return 0, err
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// readReady reads what the init reports once it has set the sandbox up:
// "ok", or the error that stopped it. EOF without a word means it died.
func readReady(r io.Reader) error {
	b, _ := io.ReadAll(r)
	msg := strings.TrimSpace(string(b))
	switch {
	case msg == "ok":
		return nil
	case msg == "":
		return errors.New("the sandbox's first process ended before it was set up")
	}
	e := &initError{msg: msg}
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EACCES} {
		if strings.HasSuffix(msg, ": "+errno.Error()) {
			e.errno = errno
		}
	}
	return e
}

// initError is what a sandbox's init reported when it could not set the
// sandbox up: its text, which ends with the system call's error, and that
// error when it is a refusal (EPERM, EACCES), for errors.Is: AppArmor's
// restriction of user namespaces shows as a refused mount here.
type initError struct {
	msg   string
	errno syscall.Errno
}

func (e *initError) Error() string { return e.msg }

func (e *initError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// Probe makes a sandbox and lets it go at once: whether this process can
// make sandboxes here, with the error (an *Error, which Diagnose explains)
// when it cannot. It changes nothing.
func Probe() error {
	exe, err := self()
	if err != nil {
		return err
	}
	userns := NeedsUserNamespace()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer ready.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{exe},
		Env:         append(withoutEnv(os.Environ(), envInit, EnvInside), envInit+"="+roleProbe),
		ExtraFiles:  []*os.File{readyW},
		SysProcAttr: sysProcAttr(userns),
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return &Error{Op: "create", Err: err, UserNS: userns}
	}
	rerr := readReady(ready)
	cmd.Wait()
	if rerr != nil {
		return &Error{Op: "set up", Err: rerr, UserNS: userns}
	}
	return nil
}

// withoutEnv drops the named variables from env.
func withoutEnv(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			if k == n {
				drop = true
			}
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// Error is a sandbox that could not be made: the kernel refused the
// namespaces (Op "create") or setting them up (Op "set up").
type Error struct {
	Op     string
	Err    error
	UserNS bool // a user namespace was asked for
}

func (e *Error) Error() string {
	what := "network, mount and PID namespaces"
	if e.UserNS {
		what = "a user namespace with " + what
	}
	return fmt.Sprintf("sandbox: %s %s: %v", e.Op, what, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// isEPERM says whether err is a refusal by the kernel.
func isEPERM(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}
