package emulator

import (
	"fmt"
	"os"
	"testing"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// reexecEnv makes the test binary run Main(os.Args[1:]) (the emulator
// process) instead of the tests: Main drops capabilities, which a test
// process must keep.
const reexecEnv = "NETLAB_EMULATOR_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(reexecEnv) {
	case "":
		// In a sandbox of their own, like every package that makes
		// namespaces (sandbox.RunTests).
		os.Exit(sandbox.RunTests(m.Run, false))
	case "main":
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	case "priority":
		os.Exit(priorityChild(Priority(os.Args[len(os.Args)-1])))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s\n", reexecEnv)
		os.Exit(3)
	}
}
