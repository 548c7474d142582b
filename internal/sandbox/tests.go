package sandbox

import (
	"fmt"
	"os"
)

// TestSandbox is what Inside says in the sandbox RunTests makes for a test
// binary (one that ends with it).
const TestSandbox = "test"

// EnvOnHost, set to 1, makes RunTests run the tests on the machine itself,
// as before sandboxes: netlabtest.OnHost() in code.
const EnvOnHost = "NETLAB_TEST_ON_HOST"

// EnvDelegate chooses how a test binary's sandbox is made, for RunTests
// given a Delegate (netlabtest.Main): "1" always by the delegate (`netlab
// sandbox run`), "0" never, unset or anything else by the binary itself,
// and by the delegate when the binary may not make one here (Delegable).
const EnvDelegate = "NETLAB_TEST_DELEGATE"

// Delegate runs the whole test binary again inside a sandbox that another
// program makes (netlabtest's: `netlab sandbox run`) and returns its exit
// status. why is the error this binary met making the sandbox itself (nil
// when EnvDelegate=1 forced the delegate); an error means the delegate could
// not run the tests, and said why on stderr.
type Delegate func(why error) (int, error)

// TestsOption configures RunTests.
type TestsOption func(*testsOptions)

type testsOptions struct {
	delegate Delegate
}

// WithDelegate gives RunTests a delegate for when this binary may not make
// a sandbox here (see Delegable and EnvDelegate).
func WithDelegate(d Delegate) TestsOption { return func(o *testsOptions) { o.delegate = d } }

// RunTests is the body of a test binary's TestMain: it runs the whole test
// binary again inside a fresh sandbox and returns its exit status, so the
// tests' labs never meet the machine's (nor a user's labs) and a user without
// root runs them for real. run (m.Run) runs the tests; it is called here,
// inside, or on the machine when onHost (or EnvOnHost=1) says so.
//
// When this binary may not make the sandbox but another program may (AppArmor
// restricts user namespaces to programs with a profile: Delegable), a
// delegate, if given, runs the tests in a sandbox of that program's instead;
// EnvDelegate forces or forbids it.
//
// When no sandbox can be made, the tests run on the machine (those that
// need root skip without it), after saying why; under NETLAB_E2E=1, where a
// test that cannot run must fail, the binary fails instead.
func RunTests(run func() int, onHost bool, opts ...TestsOption) int {
	if Inside() != "" || onHost || os.Getenv(EnvOnHost) == "1" {
		return run()
	}
	var o testsOptions
	for _, fn := range opts {
		fn(&o)
	}
	mode := os.Getenv(EnvDelegate)
	if o.delegate != nil && mode == "1" {
		// Forced: a delegate that cannot run the tests is a failure, never
		// a quiet run of them some other way.
		code, err := o.delegate(nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "netlab: %s=1, but the tests cannot run in a sandbox netlab makes: %v\n", EnvDelegate, err)
			return 1
		}
		return code
	}
	var code int
	var err error
	if os.Getenv("NETLAB_KEEP") == "1" {
		code, err = runKept()
	} else {
		code, err = Run(TestSandbox)
	}
	if err == nil {
		return code
	}
	if o.delegate != nil && mode != "0" && Delegable(err) {
		code, derr := o.delegate(err)
		if derr == nil {
			return code
		}
	}
	fmt.Fprintf(os.Stderr, "netlab: the tests cannot run in a sandbox: %v\n", err)
	if why := Diagnose(err); why != "" {
		fmt.Fprintln(os.Stderr, why)
	}
	if os.Getenv("NETLAB_E2E") == "1" {
		fmt.Fprintln(os.Stderr, "netlab: NETLAB_E2E=1 makes this a failure")
		return 1
	}
	fmt.Fprintln(os.Stderr, "netlab: running them on this machine instead (tests that need root skip)")
	return run()
}

// runKept runs the test binary again in a named sandbox of its own,
// "test-XXXX", held by a keeper: under NETLAB_KEEP=1 the labs of failed
// tests stay, and so must their sandbox after the binary ends. A sandbox
// left with no lab is removed; one with kept labs is named, with how to
// enter and remove it.
func runKept() (int, error) {
	exe, err := self()
	if err != nil {
		return 0, err
	}
	reg, err := DefaultRegistry("")
	if err != nil {
		return 0, err
	}
	name := NewName("test-")
	sb, _, release, err := reg.Use(name, true)
	if err != nil {
		return 0, err
	}
	cmd, err := sb.Command(exe, os.Args[1:]...)
	if err != nil {
		release()
		reg.Remove(name)
		return 0, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	release()
	code, err := exitCode(cmd, err)
	if removed, rerr := reg.RemoveIfIdle(name, ""); rerr == nil && !removed {
		fmt.Fprintf(os.Stderr, "netlab: NETLAB_KEEP: the kept labs are in sandbox %s:\n  netlab --sandbox %s status\n  netlab --sandbox %s exec LAB NS -- bash\n  remove: netlab sandbox rm %s\n", name, name, name, name)
	}
	return code, err
}
