package netlabtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperArg makes the test binary a lab's program instead of the tests
// (see TestMain): `TESTBINARY netlabtest-helper http ADDR TEXT` serves
// TEXT over HTTP on ADDR and says so on stdout.
const helperArg = "netlabtest-helper"

func helper(args []string) int {
	if len(args) != 3 || args[0] != "http" {
		fmt.Fprintf(os.Stderr, "helper: want http ADDR TEXT, not %q\n", args)
		return 2
	}
	ln, err := net.Listen("tcp", args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("GET %s from %s\n", r.URL.Path, r.RemoteAddr)
		io.WriteString(w, args[2])
	}))
	fmt.Fprintln(os.Stderr, "helper:", err)
	return 1
}

// alive says whether a process runs (a zombie does not: it has ended).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// A server started in b is ready by its log, by HTTP from b and by TCP and
// HTTP from a, reached by b's name in the lab's hosts file; programs run
// by Exec and Command see that file too, and Command's Env is the
// program's.
func TestStartServerReachedByName(t *testing.T) {
	lab := Up(t, "testdata/pair.yaml")
	srv := lab.Start(t, "b", os.Args[0], helperArg, "http", ":8080", "hello from b")
	srv.WaitLog(t, `^listening on`, 10*time.Second)
	srv.WaitHTTP(t, "http://b:8080/", 10*time.Second)
	lab.WaitTCP(t, "a", "b:8080", 10*time.Second)
	lab.WaitHTTP(t, "a", "http://b-eth0:8080/from-a", 10*time.Second)
	if line := srv.WaitLog(t, `GET /from-a from 192\.168\.77\.1:`, 5*time.Second); !strings.HasPrefix(line, "GET /from-a") {
		t.Errorf("WaitLog returned %q", line)
	}
	if srv.PID() <= 1 || !alive(srv.PID()) {
		t.Errorf("PID %d does not run", srv.PID())
	}

	// Go code in a dials b by name.
	c, err := lab.Dial("a", "tcp", "b:8080", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "192.168.77.2" {
		t.Errorf("b:8080 dialled %s, want b's first address 192.168.77.2", got)
	}
	c.Close()

	// Exec runs in a's view: the lab's hosts file, names that resolve.
	if out := lab.Exec(t, "a", "cat", "/etc/hosts"); !strings.Contains(out, "# lab "+lab.Name()) {
		t.Errorf("a's /etc/hosts is not the lab's:\n%s", out)
	}
	if out := lab.Exec(t, "a", "getent", "hosts", "b"); !strings.Contains(out, "192.168.77.2") {
		t.Errorf("getent hosts b in a: %s", out)
	}
	lab.Exec(t, "a", "ping", "-c1", "-W2", "b")
	if out := lab.Exec(t, "a", "ip", "-br", "link", "show", "p2p"); !strings.Contains(out, "p2p") {
		t.Errorf("Exec did not run in a's network: %s", out)
	}

	// Command is an exec.Cmd like any other: the environment given, the
	// output taken, the program's exit status.
	cmd := lab.Command("a", "sh", "-c", `echo "x=$NETLABTEST_X"; exec nc -z -w2 b 8080`)
	cmd.Env = append(cmd.Env, "NETLABTEST_X=42")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "x=42" {
		t.Errorf("Command: %v\n%s", err, out)
	}
	err = lab.Command("a", "sh", "-c", "exit 7").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("Command's exit status: %v, want 7", err)
	}
}

// Start's program and what it started end when its test ends (SIGKILL
// after the grace time for one that ignores SIGTERM), while the lab still
// runs; Stop ends one at once, and Wait says how it ended.
func TestStartedProgramEndsWithItsTest(t *testing.T) {
	lab := Up(t, "testdata/pair.yaml")
	var pid, child int
	t.Run("started", func(t *testing.T) {
		// The shell and its sleep ignore SIGTERM; both are in the group.
		p := lab.Start(t, "a", "sh", "-c", `trap "" TERM; sleep 600 & echo "child $!"; wait`)
		line := p.WaitLog(t, `^child \d+$`, 10*time.Second)
		pid = p.PID()
		child, _ = strconv.Atoi(strings.TrimPrefix(line, "child "))
		if !alive(pid) || !alive(child) {
			t.Fatalf("program %d or its child %d does not run", pid, child)
		}
	})
	if pid == 0 || child == 0 {
		t.Fatal("the subtest did not start the program")
	}
	if alive(pid) || alive(child) {
		t.Errorf("after its test: program %d alive %v, its child %d alive %v", pid, alive(pid), child, alive(child))
	}
	if !strings.Contains(namespaces(t), lab.NS("a")) {
		t.Errorf("the lab went down with the subtest's program")
	}

	p := lab.Start(t, "b", "sleep", "600")
	select {
	case <-p.Done():
		t.Fatalf("sleep ended at once: %v\n%s", p.Wait(), p.Log())
	default:
	}
	start := time.Now()
	p.Stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop of a program that takes SIGTERM took %v", d)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Wait after Stop: %v, want signal: terminated", err)
	}
	if alive(p.PID()) {
		t.Errorf("stopped program %d runs", p.PID())
	}
	p.Stop() // again: nothing more
}

// A program that ends at once makes WaitTCP fail at once, with its log's
// last lines, not after the timeout; the failed test's log shows the end of
// the lab's service logs, and the program's log is kept. The failing test
// runs as a child test binary.
func TestWaitFailsFastWhenProgramEnds(t *testing.T) {
	if os.Getenv("NETLAB_PROCESS_CHILD") == "1" {
		waitChild(t)
		return
	}
	RequireRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWaitFailsFastWhenProgramEnds$", "-test.v")
	cmd.Env = append(os.Environ(), "NETLAB_PROCESS_CHILD=1", "NETLAB_CAPTURE_DIR="+dir)
	start := time.Now()
	b, err := cmd.CombinedOutput()
	out := string(b)
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("the child took %v: WaitTCP waited for its 120 s timeout", took)
	}
	if err == nil || !strings.Contains(out, "--- FAIL: TestWaitFailsFastWhenProgramEnds") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{
		"a: sh -c echo exit-marker-1; exit 3: exited: exit status 3 before a TCP connection to b:9",
		"  exit-marker-1",          // the program's log, in WaitTCP's failure
		"whose end is shown above", // and not twice
		"service b/chatty's log (netlab logs ",
		"  service-marker-2", // the service's log, in the teardown
	} {
		if !strings.Contains(out, want) {
			t.Errorf("child's output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`its log, whose end is shown above, is kept at (\S+\.log)`).FindStringSubmatch(out)
	if m == nil || filepath.Dir(m[1]) != dir {
		t.Fatalf("child does not say its program's log is kept in %s:\n%s", dir, out)
	}
	if kept, err := os.ReadFile(m[1]); err != nil || string(kept) != "exit-marker-1\n" {
		t.Errorf("kept log %s: %q, %v", m[1], kept, err)
	}
}

// waitChild is the child's test: a program that exits at once, waited for.
func waitChild(t *testing.T) {
	lab := UpString(t, `
name: fails
namespaces:
  a:
    interfaces:
      p2p: {peer: b/p2p, addresses: [192.168.76.1/30]}
  b:
    interfaces:
      p2p: {addresses: [192.168.76.2/30]}
    services:
      chatty: {command: [sh, -c, "echo service-marker-2; exec sleep 600"], ready: {log: service-marker-2}}
`)
	p := lab.Start(t, "a", "sh", "-c", "echo exit-marker-1; exit 3")
	p.WaitTCP(t, "b:9", 120*time.Second)
	t.Error("WaitTCP returned")
}
