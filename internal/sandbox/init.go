package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// init runs a sandbox's first process when this program was started as one
// (Run, Start, Probe set envInit), before main or TestMain: the role must
// not run the program's own start-up (a test binary's TestMain would start
// the tests in the init). It never returns then.
func init() {
	role := os.Getenv(envInit)
	if role == "" {
		return
	}
	os.Exit(initMain(role))
}

// The descriptors a sandbox's init gets from its creator (ExtraFiles).
const (
	readyFD  = 3 // the init writes "ok" or its error, then closes it
	commitFD = 4 // keeper: the creator writes "go" once it has registered it
)

func initMain(role string) int {
	ready := os.NewFile(readyFD, "ready")
	unix.CloseOnExec(readyFD)
	fail := func(err error) int {
		fmt.Fprintf(ready, "%v\n", err)
		return 125
	}
	if os.Getpid() != 1 {
		return fail(errors.New("not the first process of a new PID namespace"))
	}
	if err := setUp(); err != nil {
		return fail(err)
	}
	switch role {
	case roleProbe:
		fmt.Fprintln(ready, "ok")
		return 0
	case roleKeeper:
		return keep(ready)
	case roleRun:
		return runChild(ready)
	}
	return fail(fmt.Errorf("unknown sandbox role %q", role))
}

// privateRunEntries are the names under the machine's /run a sandbox does not
// see: its own named namespaces, netlab's state and private OVS, and the
// system OVS (which lives in the machine's network namespace). Everything
// else under /run is bound back in, so paths there ($XDG_RUNTIME_DIR, a
// resolv.conf link) still work.
var privateRunEntries = map[string]bool{"netns": true, "netlab": true, "openvswitch": true}

// setUp makes the sandbox's mounts and brings up its loopback:
//
//	mount --make-rslave /                  # nothing we mount reaches the machine
//	mount -t proc proc /proc               # the sandbox's PIDs
//	mount -t tmpfs tmpfs /run              # + the machine's /run entries bound back
//	mount -t sysfs sysfs /sys              # /sys/class/net shows the sandbox's links
//	ip link set lo up
//
// The flags nosuid, nodev and noexec on proc and sysfs are the ones the
// kernel insists on in a user namespace (they are locked on the machine's).
func setUp() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("mount --make-rslave /: %w", err)
	}
	const locked = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("proc", "/proc", "proc", locked, ""); err != nil {
		return fmt.Errorf("mount proc on /proc: %w", err)
	}
	if err := privateRun(); err != nil {
		return err
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", locked, ""); err != nil {
		return fmt.Errorf("mount sysfs on /sys: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("ip link set lo up: %w", err)
	}
	return nil
}

// privateRun puts a tmpfs on /run and binds the machine's entries back,
// except privateRunEntries. The machine's /run stays reachable through a
// descriptor opened before the tmpfs covers it. An entry that cannot be bound
// back is left out: it is the machine's, and nothing of netlab's.
func privateRun() error {
	fd, err := unix.Open("/run", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /run: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on /run: %w", err)
	}
	old := fmt.Sprintf("/proc/self/fd/%d", fd)
	entries, err := os.ReadDir(old)
	if err != nil {
		return nil // an unreadable /run: nothing to bind back
	}
	for _, e := range entries {
		if privateRunEntries[e.Name()] {
			continue
		}
		from, to := filepath.Join(old, e.Name()), filepath.Join("/run", e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(from); err == nil {
				os.Symlink(target, to)
			}
			continue
		case e.IsDir():
			if os.Mkdir(to, 0o755) != nil {
				continue
			}
		default:
			f, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644)
			if err != nil {
				continue
			}
			f.Close()
		}
		if unix.Mount(from, to, "", unix.MS_BIND|unix.MS_REC, "") != nil {
			os.Remove(to)
		}
	}
	return nil
}

// keep holds a named sandbox: it reports ready, waits for its creator to
// say the sandbox is registered (a creator that died before is a sandbox
// nobody knows: it ends), then reaps the processes that end up as its
// children (daemons started inside, commands that joined) until it is told
// to stop. When it exits, the kernel ends every process of the sandbox.
func keep(ready *os.File) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	fmt.Fprintln(ready, "ok")
	ready.Close()
	commit := os.NewFile(commitFD, "commit")
	unix.CloseOnExec(commitFD)
	word, _ := io.ReadAll(io.LimitReader(commit, 16))
	commit.Close()
	if string(word) != "go" {
		return 0
	}
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return 0
		}
		reap(-1)
	}
	return 0
}

// runChild starts this program again inside, as an ordinary process of the
// sandbox, passes signals on to it and reaps every process that ends up as
// the init's child; it returns the program's status once it has ended.
func runChild(ready *os.File) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(ready, "find this program: %v\n", err)
		return 125
	}
	p, err := os.StartProcess(exe, os.Args, &os.ProcAttr{
		Env:   withoutEnv(os.Environ(), envInit),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(ready, "start %s inside: %v\n", exe, err)
		return 125
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	for {
		if code, done := reap(p.Pid); done {
			return code
		}
		sig := <-sigs
		if sig != syscall.SIGCHLD {
			p.Signal(sig)
		}
	}
}

// reap collects every child that has ended, without waiting. It reports the
// exit status of pid (shell-style: 128+N for signal N) once pid is among
// them.
func reap(pid int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || got <= 0 {
			return 0, false
		}
		if got == pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal()), true
			}
			return ws.ExitStatus(), true
		}
	}
}
