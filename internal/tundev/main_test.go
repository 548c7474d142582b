package tundev_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// childEnv makes the test binary act as a child process instead of running
// tests (see asNobody): "access" prints CheckAccess's answer, "attach"
// attaches to the TAP os.Args[1] as it is and then tries to create one.
const childEnv = "NETLAB_TUNDEV_TEST_CHILD"

// TestMain runs the tests in a sandbox of their own (a network, mount and
// PID namespace; a user namespace too without root): the devices they make
// are in namespaces of the sandbox, never the machine's. An external test
// package, so that sandbox may call tundev itself.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(sandbox.RunTests(m.Run, false))
	case "access":
		a := tundev.CheckAccess()
		fmt.Printf("opens=%v\nwhy=%s\nfix=%s\n", a.Opens, a.Why(), a.Fix())
	case "attach":
		qs, err := tundev.Attach(os.Args[1], tundev.TAP)
		if err != nil {
			fmt.Println("attach:", err)
			os.Exit(1)
		}
		fmt.Printf("attached: vnet %v\n", qs[0].VnetHdr)
		fmt.Println("create:", tundev.Create("nobody0", tundev.Spec{Kind: tundev.TAP, Owner: -1, Group: -1}))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s\n", childEnv)
		os.Exit(3)
	}
	os.Exit(0)
}
