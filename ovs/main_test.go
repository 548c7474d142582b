package ovs

import (
	"os"
	"testing"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// TestMain runs the tests in a sandbox of their own (a network, mount and
// PID namespace; a user namespace too without root): what they make on
// "the host" is the sandbox's, so they never meet the machine's labs, and
// packages of tests may run side by side.
func TestMain(m *testing.M) { os.Exit(sandbox.RunTests(m.Run, false)) }
