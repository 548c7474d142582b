package namespace

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/sandbox"
)

// The main goroutine stays on the main thread until TestMain hands it to
// a worker (mainThreadWorker): a worker's case the tests cannot reach.
func init() { runtime.LockOSThread() }

// TestMain runs the tests in a sandbox of their own (a network, mount and
// PID namespace; a user namespace too without root): what they make on
// "the host" is the sandbox's, so they never meet the machine's labs, and
// packages of tests may run side by side.
func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(func() int {
		mainThreadResult = mainThreadWorker()
		return m.Run()
	}, false))
}

// mainThreadResult is what mainThreadWorker found, for
// TestWorkerOnTheMainThread.
var mainThreadResult struct {
	started int64
	onMain  bool
	err     error
}

// mainThreadWorker starts a worker that the main thread runs first (the
// main goroutine, locked to it, queues the worker, lets the thread go and
// waits: the thread runs what was queued), gives it a job and says how
// many workers that took and where the job ran.
func mainThreadWorker() (r struct {
	started int64
	onMain  bool
	err     error
}) {
	if unix.Gettid() != unix.Getpid() {
		r.err = fmt.Errorf("TestMain is not on the main thread")
		return r
	}
	h, err := netns.Get()
	if err != nil {
		r.err = err
		return r
	}
	defer h.Close()
	c := newThreadCache(maxIdleThreads)
	var tid int
	j := &job{ns: h, fn: func() error { tid = unix.Gettid(); return nil }, res: make(chan doResult, 1)}
	c.started.Add(1)
	go c.worker(nil)
	runtime.UnlockOSThread()
	c.jobs <- j
	res := <-j.res
	runtime.LockOSThread()
	r.started, r.onMain, r.err = c.started.Load(), tid == unix.Getpid(), res.err
	return r
}

// A worker the main thread picks up hands over to one other worker, on
// another thread, at once: before, the main thread picked the next one up
// too, thousands of times in a row (each a goroutine, two system calls
// and a CPU's time).
func TestWorkerOnTheMainThread(t *testing.T) {
	r := mainThreadResult
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.onMain {
		t.Error("the job ran on the main thread")
	}
	if r.started > 2 {
		t.Errorf("%d workers started for one job from the main thread, want at most 2", r.started)
	}
	t.Logf("%d workers started", r.started)
}
