package supervise

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// childEnv makes the test binary a service's program instead of running
// tests: "listen NETWORK ADDRESS" listens (TCP) or binds (UDP) there after
// a moment, says so, and waits to be killed.
const childEnv = "NETLAB_SUPERVISE_TEST_CHILD"

// TestMain builds the netlab binary once, outside the sandbox (a service
// runs as `netlab supervise SPEC`, its program under `netlab view-exec
// SPEC`; Binary finds it in NETLAB_BIN), then runs the tests in a sandbox
// of their own: the namespaces, services and strays they make are the
// sandbox's, never the machine's labs' nor another test run's.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(child(role))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if sandbox.Inside() != "" {
		return m.Run() // NETLAB_BIN is the binary the run outside built
	}
	dir, err := os.MkdirTemp("", "netlab-supervise-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "netlab")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		// The supervisor's goroutines get the race detector too.
		args = append(args, "-race")
		if os.Getenv("GORACE") == "" {
			// Every supervisor would sleep 1 s at exit for the reports.
			os.Setenv("GORACE", "atexit_sleep_ms=50")
		}
	}
	build := exec.Command("go", append(args, "../../cmd/netlab")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build netlab:", err)
		return 1
	}
	os.Setenv("NETLAB_BIN", bin)
	return sandbox.RunTests(m.Run, false)
}

// raceEnabled says whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// child is the test binary as a service's program.
func child(role string) int {
	f := strings.Fields(role)
	if len(f) != 3 || f[0] != "listen" {
		fmt.Fprintf(os.Stderr, "%s: unknown role %q\n", childEnv, role)
		return 3
	}
	// Not at once: a probe must see it missing first, and wait.
	time.Sleep(300 * time.Millisecond)
	var err error
	if strings.HasPrefix(f[1], "udp") {
		_, err = net.ListenPacket(f[1], f[2])
	} else {
		_, err = net.Listen(f[1], f[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("listening on %s %s\n", f[1], f[2])
	for {
		time.Sleep(time.Hour) // until the supervisor ends it
	}
}
