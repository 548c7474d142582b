package namespace

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// threads is the process's cache of OS threads that do the work inside
// namespaces (Do, Create). Making an OS thread, locking a goroutine to it
// and reading where it is cost more than the setns calls themselves
// (measured: a fresh goroutine per Do spent ~40 µs before fn ran, setns
// about 3 µs); a thread that stays locked to a worker goroutine is reused
// instead, one per concurrent caller.
//
// A worker takes the next waiting job where it is (a busy stretch of work
// in lab namespaces goes from one to the next without returning to the
// host), and goes back to its home namespace before it waits idle: an idle
// thread inside a lab namespace would keep the namespace, and its links,
// alive after its name is deleted. A worker that cannot get home stays
// locked and exits, so the runtime discards its thread.
var threads = newThreadCache(maxIdleThreads)

// maxIdleThreads bounds the threads kept waiting for work; more are made
// while more callers work at once, and end when they are done.
const maxIdleThreads = 8

// job is one function to run inside a namespace: ns, or (unshare set) a
// new one, bound on bind unless that is empty.
type job struct {
	ns      netns.NsHandle
	unshare bool
	bind    string
	fn      func() error
	res     chan doResult
	// visit, when set, are namespaces to enter in turn (by name); create,
	// files to bind new namespaces on in turn ("": skipped). each(i, 0)
	// then runs inside the i-th; each(i, errno) says why it could not be
	// entered or made. Either replaces ns, unshare and fn.
	visit  []string
	create []string
	each   func(i int, errno unix.Errno)
}

type threadCache struct {
	jobs    chan *job
	idle    atomic.Int32 // workers waiting on jobs
	maxIdle int32
	started atomic.Int64 // workers ever started (tests count them)
}

func newThreadCache(maxIdle int32) *threadCache {
	return &threadCache{jobs: make(chan *job, 1024), maxIdle: maxIdle}
}

// run runs the job on a worker and returns its result. A job never waits
// for a worker that is busy with another while none is idle: a new worker
// is started for it, so fn may itself call Do.
func (c *threadCache) run(j *job) doResult {
	j.res = make(chan doResult, 1)
	if c.idle.Load() == 0 {
		c.started.Add(1)
		go c.worker(nil)
	}
	c.jobs <- j
	r := <-j.res
	if r.panicked {
		panic(r.panicVal)
	}
	return r
}

// worker runs jobs on one locked thread until it is not needed. ready,
// when set, is closed once the worker holds a thread that is not the
// main one.
func (c *threadCache) worker(ready chan<- struct{}) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		// The main thread: the runtime cannot discard it, and
		// /proc/self/... names it. Start another worker and wait,
		// holding this thread, until it runs on another: let go at once,
		// this thread would run the new goroutine next (it is queued
		// first on this thread's P) and land here again. Measured on a
		// down of 250 namespaces: 3,276 such rounds, 90 ms of a CPU,
		// before another thread stole it.
		next := make(chan struct{})
		c.started.Add(1)
		go c.worker(next)
		<-next // blocked while locked: the runtime hands the P to another thread
		runtime.UnlockOSThread()
		if ready != nil {
			close(ready)
		}
		return
	}
	if ready != nil {
		close(ready)
	}
	// Home is where the runtime made the thread: the process's own
	// namespace, which unlocked threads never leave.
	home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		// Take one job, to fail it, so no caller waits on this worker.
		j := <-c.jobs
		j.res <- doResult{err: fmt.Errorf("enter namespace: read current: %w", err)}
		runtime.UnlockOSThread()
		return
	}
	away := false
	var j *job
	for {
		select {
		case j = <-c.jobs: // waiting already: no trip home in between
		default:
			if away {
				if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
					return // stays locked: the runtime ends this thread
				}
				away = false
			}
			if c.idle.Add(1) > c.maxIdle {
				c.idle.Add(-1)
				unix.Close(home)
				runtime.UnlockOSThread()
				return
			}
			j = <-c.jobs
			c.idle.Add(-1)
		}
		r, moved := runJob(j, home, away)
		away = away || moved
		j.res <- r
	}
}

// runJob switches the calling (locked) thread into the job's namespace, or
// a new one, and runs fn there. moved says the thread left its namespace.
// home is the thread's own namespace, away whether it is elsewhere now.
func runJob(j *job, home int, away bool) (r doResult, moved bool) {
	if j.each != nil {
		defer func() {
			if p := recover(); p != nil {
				r.panicked, r.panicVal = true, p
			}
		}()
		return runEach(j, home, away)
	}
	if j.unshare {
		if err := fromHome(home, away); err != nil {
			return doResult{err: err}, false
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return doResult{err: fmt.Errorf("unshare: %w", err)}, false
		}
		moved = true
		if j.bind != "" {
			if err := unix.Mount("/proc/thread-self/ns/net", j.bind, "none", unix.MS_BIND, ""); err != nil {
				return doResult{err: fmt.Errorf("bind-mount /proc/thread-self/ns/net: %w", err)}, true
			}
		}
	} else {
		if err := unix.Setns(int(j.ns), unix.CLONE_NEWNET); err != nil {
			// setns failed: the thread is still where it was.
			return doResult{err: fmt.Errorf("enter namespace: %w", err)}, false
		}
		moved = true
	}
	if j.fn == nil {
		return r, moved
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.panicked, r.panicVal = true, p
			}
		}()
		r.err = j.fn()
	}()
	return r, moved
}

// Visit runs fn(i) inside each named namespace in turn, on one thread that
// goes from one to the next (a thread handed a job per namespace costs two
// wake-ups each, which a busy machine makes slow), and returns each one's
// error: a namespace that does not exist gets an error wrapping
// fs.ErrNotExist and fn is not called for it. Callers wanting more threads
// split the names.
//
// Equivalent to: `for ns in NAMES; do ip netns exec $ns ...; done`.
func Visit(names []string, fn func(i int) error) []error {
	errs := make([]error, len(names))
	for i, name := range names {
		if err := checkName(name); err != nil {
			errs[i] = err
		}
	}
	r := threads.run(&job{visit: names, each: func(i int, errno unix.Errno) {
		if errs[i] != nil {
			return
		}
		if errno != 0 {
			// ENOENT: errors.Is(err, fs.ErrNotExist) holds.
			errs[i] = fmt.Errorf("enter namespace %s: %w", names[i], errno)
			return
		}
		errs[i] = fn(i)
	}})
	if r.err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = r.err
			}
		}
	}
	return errs
}

// CreateEach is CreateWith for each name in turn, on one thread, and returns
// each one's error. The thread goes back to its own namespace before it
// makes each (see fromHome), one setns.
func CreateEach(names []string, fn func(i int) error) []error {
	errs := make([]error, len(names))
	if err := prepareDir(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	paths := make([]string, len(names))
	for i, name := range names {
		if errs[i] = checkName(name); errs[i] != nil {
			continue
		}
		paths[i] = Path(name)
		f, err := os.OpenFile(paths[i], os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			// *PathError of EEXIST: errors.Is(err, fs.ErrExist) holds.
			errs[i] = fmt.Errorf("create namespace %s: %w", name, err)
			paths[i] = ""
			continue
		}
		f.Close()
	}
	r := threads.run(&job{create: paths, each: func(i int, errno unix.Errno) {
		if paths[i] == "" {
			return
		}
		if errno != 0 {
			errs[i] = fmt.Errorf("create namespace %s: %w", names[i], errno)
			os.Remove(paths[i])
			return
		}
		if fn != nil {
			if err := fn(i); err != nil {
				errs[i] = fmt.Errorf("create namespace %s: %w", names[i], err)
			}
		}
	}})
	if r.err != nil {
		for i := range errs {
			if errs[i] == nil && paths[i] != "" {
				errs[i] = fmt.Errorf("create namespace %s: %w", names[i], r.err)
			}
		}
	}
	return errs
}

// fromHome puts a thread that is away back in its home namespace, before it
// makes a new one: a new namespace copies some sysctls from the one it is
// made in (with net.core.devconf_inherit_init_net=3), so every namespace
// is made from the process's own and starts the same (which
// internal/kernel counts on to skip sysctls already at their value).
func fromHome(home int, away bool) error {
	if !away {
		return nil
	}
	if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("return to the process's namespace: %w", err)
	}
	return nil
}

// runEach is runJob for a Visit or CreateEach job.
func runEach(j *job, home int, away bool) (r doResult, moved bool) {
	errno := func(err error) unix.Errno {
		if e, ok := err.(unix.Errno); ok {
			return e
		}
		return unix.EINVAL
	}
	for i, name := range j.visit {
		fd, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			j.each(i, errno(err))
			continue
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil { // not a namespace (EINVAL): the thread is where it was
			j.each(i, errno(err))
			continue
		}
		moved = true
		j.each(i, 0)
	}
	for i, path := range j.create {
		if path == "" {
			continue
		}
		if away || moved {
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				j.each(i, errno(err)) // nothing made: the next tries again
				continue
			}
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			j.each(i, errno(err))
			continue
		}
		moved = true
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			j.each(i, errno(err))
			continue
		}
		j.each(i, 0)
	}
	return r, moved
}
