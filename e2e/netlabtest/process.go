package netlabtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/supervise"
)

// Process is a program Start runs in a lab namespace for the length of a
// test.
type Process struct {
	lab   *Lab
	ns    string // as the test named it: waits dial from there
	label string // "b: server --port 8080", for messages
	log   string // its stdout and stderr
	pid   int
	done  chan struct{} // closed once it has ended and been reaped

	// mu is held while the process group is signalled and while the
	// program is reaped: a signal never reaches a group whose leader is
	// gone and whose id the kernel may have given to another process.
	mu       sync.Mutex
	reaped   bool
	stopping bool  // Stop was called
	err      error // cmd.Wait's, once done
	shown    int64 // the log's size when a failure last showed its tail
}

// Start starts a long-running program (a server, a daemon in the
// foreground) in namespace ns, as Command runs it: in the namespace's
// view, where the lab's names resolve. Its stdout and stderr go to a log
// file in t.TempDir() (Log reads it). It runs in a process group of its
// own, and dies with the test binary (in Main's sandbox, so does everything
// it started).
//
// When the test ends the program is ended (SIGTERM to its process group,
// SIGKILL after a grace time) by a t.Cleanup; cleanups run last first, so
// a program started after Up ends before its lab goes down. If the test
// failed, the last lines of its log are in the test's log and the whole
// log is kept where Capture keeps a failed test's packets (`go test
// -artifacts`, $NETLAB_CAPTURE_DIR, or a kept temporary directory).
//
//	srv := lab.Start(t, "server", serverBinary, "--listen", ":8080")
//	srv.WaitHTTP(t, "http://server:8080/healthz", 10*time.Second)
//
// It needs the netlab binary, as Command does: without it the test is
// skipped (failed under NETLAB_E2E=1).
//
// Equivalent to: `netlab exec LAB NS -- NAME ARGS... >LOG 2>&1 &`.
func (l *Lab) Start(t testing.TB, ns, name string, args ...string) *Process {
	t.Helper()
	cmd := l.Command(ns, name, args...)
	if cmd.Err != nil {
		skipOrFail(t, fmt.Sprintf("%v (Start runs programs with `netlab exec`)", cmd.Err))
	}
	label := strings.Join(append([]string{filepath.Base(name)}, args...), " ")
	label = strings.TrimPrefix(l.NS(ns), l.prefix) + ": " + label
	logf, err := os.CreateTemp(t.TempDir(), fileName(ns+"-"+filepath.Base(name))+"-*.log")
	if err != nil {
		t.Fatalf("netlabtest: start %s: %v", label, err)
	}
	defer logf.Close() // the program has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{lab: l, ns: ns, label: label, log: logf.Name(), done: make(chan struct{})}
	started := make(chan error, 1)
	go p.run(cmd, started)
	if err := <-started; err != nil {
		t.Fatalf("netlabtest: start %s: %v", label, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.reportFailure(t)
		}
	})
	return p
}

// run starts the program and reaps it when it ends.
func (p *Process) run(cmd *exec.Cmd, started chan<- error) {
	// The parent-death signal follows the thread that forked: keep this
	// one until the program ends, or the runtime retiring it would kill
	// the program.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		started <- err
		return
	}
	p.pid = cmd.Process.Pid
	started <- nil
	// Wait for its end without reaping it: until it is reaped its pid,
	// and so its process group's id, stays the program's.
	waitExited(p.pid)
	p.mu.Lock()
	if p.stopping {
		// What it started and left, gone before Stop returns (a port it
		// held free again): killed and waited for while the zombie
		// leader keeps the group's id from being given to another.
		syscall.Kill(-p.pid, syscall.SIGKILL)
		waitGroupGone(p.pid, supervise.GraceTime)
	}
	p.err = cmd.Wait()
	p.reaped = true
	p.mu.Unlock()
	close(p.done)
}

// waitExited returns once process pid has ended, leaving it to be reaped.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// waitGroupGone waits, at most d, until no process of process group pgid
// runs (zombies have ended: their parents reap them).
func waitGroupGone(pgid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for groupRuns(pgid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupRuns says whether a process of group pgid runs, as /proc says.
func groupRuns(pgid int) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		// "pid (comm) STATE PPID PGRP ...": comm may hold anything, so the
		// fields are counted from its closing parenthesis.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// PID is the program's process id (its process group's too).
func (p *Process) PID() int { return p.pid }

// Done is closed when the program has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the program to end and returns how: nil for exit status
// 0, else an *exec.ExitError.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the program, if it still runs, and waits for it: SIGTERM to
// its process group, SIGKILL to the group after a grace time
// (supervise.GraceTime, as netlab gives its services), and SIGKILL to what
// is left of the group once the program has ended, waited for too. The
// test's end stops it; calling Stop again does nothing more. A program
// that ended by itself leaves what it started to the lab's teardown, which
// ends every process in the lab's namespaces.
func (p *Process) Stop() {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(supervise.GraceTime):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// signal sends sig to the program's process group unless it is reaped.
func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	p.stopping = true
	syscall.Kill(-p.pid, sig)
}

// Log returns what the program has written so far, stdout and stderr
// interleaved as written.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// state says how the program is, for messages: "running", "exited: exit
// status 1", "stopped at the test's end".
func (p *Process) state() string {
	select {
	case <-p.done:
	default:
		return "running"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.stopping:
		return "stopped by the test"
	case p.err == nil:
		return "exited: exit status 0"
	}
	return "exited: " + p.err.Error()
}

// tail returns the last lines of the log, for a failure's message, and
// remembers that they were shown.
func (p *Process) tail() string {
	p.mu.Lock()
	if fi, err := os.Stat(p.log); err == nil {
		p.shown = fi.Size()
	}
	p.mu.Unlock()
	return tailFile(p.log, tailLines)
}

// reportFailure keeps the log of a failed test's program and shows its
// last lines, unless a failure showed them already and nothing came since.
func (p *Process) reportFailure(t testing.TB) {
	t.Helper()
	kept := "not kept: "
	if dir, err := failureDir(t); err != nil {
		kept += err.Error()
	} else if path, err := copyLog(p.log, dir, fileName(t.Name()+"-"+p.label)); err != nil {
		kept += err.Error()
	} else {
		kept = "kept at " + path
	}
	p.mu.Lock()
	shown := p.shown
	p.mu.Unlock()
	if fi, err := os.Stat(p.log); err == nil && shown > 0 && fi.Size() == shown {
		t.Logf("netlabtest: the test failed: %s (pid %d, %s); its log, whose end is shown above, is %s", p.label, p.pid, p.state(), kept)
		return
	}
	t.Logf("netlabtest: the test failed: %s (pid %d, %s); its log is %s, and ends:\n%s", p.label, p.pid, p.state(), kept, p.tail())
}

// copyLog copies a log into dir as a new file named after name.
func copyLog(src, dir, name string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Name(), f.Close()
}

// fileName makes a test's or a program's name a file name: letters,
// digits, '.', '-' and '_', at most 100 of them.
func fileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 100)])
}
