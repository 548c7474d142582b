package netlabtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// delegate is Main's way round a machine where this test binary may not
// make its sandbox but netlab may: Ubuntu 23.10 and later restrict user
// namespaces to programs whose AppArmor profile allows them
// (kernel.apparmor_restrict_unprivileged_userns=1), and a go test binary
// has no fixed path a profile could name, while an installed netlab has
// one (make install loads its profile). So the binary runs itself again
// inside `netlab sandbox run`, with the same arguments (-test.run,
// -test.count, -test.v=test2json for go test -json, ...), environment,
// working directory and standard streams, and exits with its status:
// inside, Main finds itself in a sandbox and runs the tests, TestMain's
// own code once more as always. NETLAB_TEST_DELEGATE=1 takes this way on
// any machine (tests of it), =0 never.
//
// netlab is NETLAB_BIN, or netlab on PATH. Under NETLAB_KEEP=1 the sandbox
// stays when failed tests kept their labs in it (--keep-labs), as Main's
// own does.
//
// It says on stderr which way the tests run. An error means they did not
// run: no netlab, or netlab could not make the sandbox (exit 125, having
// said why).
func delegate(why error) (int, error) {
	bin, err := netlabBinary()
	if err != nil {
		if why == nil {
			fmt.Fprintf(os.Stderr, "netlabtest: %s=1, but %v\n", sandbox.EnvDelegate, err)
		} else {
			fmt.Fprintf(os.Stderr, "netlabtest: this test binary may not make its sandbox here, and netlab, which may once its AppArmor profile is loaded (make install), was not found: %v\n", err)
		}
		return 0, err
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("netlabtest: %w", err)
	}
	name := sandbox.NewName("test-")
	args := []string{"sandbox", "run", "--name", name}
	if os.Getenv("NETLAB_KEEP") == "1" {
		args = append(args, "--keep-labs")
	}
	args = append(append(args, "--", exe), os.Args[1:]...)
	if why == nil {
		fmt.Fprintf(os.Stderr, "netlabtest: %s=1: the tests run in sandbox %s, made by %s (netlab sandbox run)\n", sandbox.EnvDelegate, name, bin)
	} else {
		fmt.Fprintf(os.Stderr, "netlabtest: this test binary may not make its sandbox here (%v); the tests run in sandbox %s, made by %s (netlab sandbox run), which may\n", why, name, bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// When this binary is killed (go test's own timeout ends it with
	// SIGKILL), netlab gets SIGTERM and passes it on to the tests, then
	// removes their sandbox. The signal follows the thread that forks.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("netlabtest: %s sandbox run: %w", bin, err)
	}
	fwd := sandbox.ForwardSignals(func(sig syscall.Signal) { cmd.Process.Signal(sig) })
	err = cmd.Wait()
	fwd.Stop()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return 0, fmt.Errorf("netlabtest: %s sandbox run: %w", bin, err)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		return 128 + int(ws.Signal()), nil
	case ws.ExitStatus() == 125:
		return 0, fmt.Errorf("netlabtest: %s could not make the tests' sandbox (above)", bin)
	}
	return ws.ExitStatus(), nil
}

// netlabBinary is the netlab that makes the sandbox: NETLAB_BIN, or netlab
// on PATH.
func netlabBinary() (string, error) {
	if b := os.Getenv("NETLAB_BIN"); b != "" {
		p, err := exec.LookPath(b)
		if err != nil {
			return "", fmt.Errorf("NETLAB_BIN=%s: %w", b, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("netlab")
	if err != nil {
		return "", errors.New("no netlab in NETLAB_BIN or on PATH")
	}
	return p, nil
}
