package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// requireRoot skips a test on a machine where it cannot run, unless
// NETLAB_E2E=1 says it must run: then it fails, so CI can never pass by
// skipping.
func requireRoot(t *testing.T) {
	t.Helper()
	testkit.RequireRoot(t, "e2e: namespaces, Open vSwitch, traffic", "ip", "ping", "ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "iperf3", "nft", "ethtool")
}

// newPrefix returns a short unique prefix ("e2x1a-") so test labs never
// collide with a user's labs or with each other.
func newPrefix(t *testing.T) string {
	t.Helper()
	return testkit.Name(t, "t", 3) + "-"
}

// result is a finished command.
type result struct {
	out  string // stdout and stderr, interleaved
	code int
}

func run(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return result{out: buf.String(), code: code}
}

// netlab runs the binary under test and returns its result.
func netlab(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, nil, netlabBin, args...)
}

// mustNetlab runs netlab and fails the test unless it exits 0.
func mustNetlab(t *testing.T, args ...string) string {
	t.Helper()
	r := netlab(t, args...)
	if r.code != 0 {
		t.Fatalf("netlab %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
	}
	return r.out
}

// sh runs a command and fails the test if it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	r := run(t, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), r.code, r.out)
	}
	return r.out
}

// inNS runs a command inside a namespace, as a user would.
func inNS(t *testing.T, ns string, args ...string) result {
	t.Helper()
	return run(t, nil, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// ping checks that from reaches addr.
func ping(t *testing.T, ns, addr string) {
	t.Helper()
	var r result
	for try := 0; try < 3; try++ {
		r = inNS(t, ns, "ping", "-c", "1", "-W", "2", addr)
		if r.code == 0 {
			return
		}
	}
	t.Fatalf("ping %s from %s failed:\n%s", addr, ns, r.out)
}

// noPing checks that from does not reach addr.
func noPing(t *testing.T, ns, addr string) {
	t.Helper()
	if r := inNS(t, ns, "ping", "-c", "1", "-W", "1", addr); r.code == 0 {
		t.Fatalf("ping %s from %s succeeded, want failure:\n%s", addr, ns, r.out)
	}
}

// tcp runs iperf3 from client to server's addr for one second and returns
// the bits per second the receiver saw; it fails the test if no data flowed.
func tcp(t *testing.T, serverNS, clientNS, addr string) float64 {
	t.Helper()
	bps := iperf(t, serverNS, clientNS, addr, 1, 0)
	t.Logf("TCP %s -> %s: %.0f Mbit/s", clientNS, serverNS, bps/1e6)
	return bps
}

// iperf runs iperf3 from client to the server's addr for secs seconds, the
// first omit of them not counted (TCP's slow start), and returns what the
// receiver got, in bits per second; it fails the test if no data flowed.
func iperf(t *testing.T, serverNS, clientNS, addr string, secs, omit int) float64 {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "iperf3.pid")
	sh(t, "ip", "netns", "exec", serverNS, "iperf3", "-s", "-1", "-D", "-I", pidfile)
	// The server is ours: end it by its PID whatever happens.
	defer func() {
		if b, err := os.ReadFile(pidfile); err == nil {
			run(t, nil, "kill", strings.TrimSpace(string(b)))
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(inNS(t, serverNS, "ss", "-ltn").out, ":5201 ") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := inNS(t, clientNS, "iperf3", "-c", addr, "-t", strconv.Itoa(secs), "-O", strconv.Itoa(omit), "-J", "--connect-timeout", "3000")
	if r.code != 0 {
		t.Fatalf("iperf3 %s -> %s (%s) failed:\n%s", clientNS, serverNS, addr, r.out)
	}
	var bps float64
	i := strings.LastIndex(r.out, `"sum_received"`)
	if i < 0 {
		t.Fatalf("iperf3: no sum_received in output:\n%s", r.out)
	}
	if _, err := fmt.Sscanf(after(r.out[i:], `"bits_per_second":`), "%g", &bps); err != nil || bps <= 0 {
		t.Fatalf("iperf3: no data received (%v):\n%s", err, r.out)
	}
	return bps
}

func after(s, marker string) string {
	i := strings.Index(s, marker)
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(s[i+len(marker):])
}

// labUp brings a lab file up with a prefix and registers its teardown by
// name (the test may change or remove the file).
func labUp(t *testing.T, file, prefix, name string) string {
	t.Helper()
	out := mustNetlab(t, "up", "-q", "--prefix", prefix, file)
	t.Cleanup(func() {
		if r := netlab(t, "down", prefix+name); r.code != 0 {
			t.Errorf("cleanup: netlab down: exit %d\n%s", r.code, r.out)
		}
	})
	return out
}

// writeFile writes a topology into the test's temp dir.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildProgram builds a Go package of the repository into a directory of
// the test's that everyone may read (the lab's programs, and users other
// than root, run what it holds), with env added to the build's
// environment; it returns the binary's path.
func buildProgram(t *testing.T, pkg, name string, env ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
