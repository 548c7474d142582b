package reflector

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Queue is one attached TUN queue used the way a C reflector uses it:
// read(2) and write(2) called directly on the goroutine's thread, blocking
// when there is nothing to read. An *os.File would go through Go's network
// poller, which costs an epoll wake-up and a goroutine switch for every
// packet that finds the queue empty: on a ping flood pinned to one CPU
// (bench.sh "ping 1cpu") that took 0.235 s per 10k pings against C's 0.185
// s; this way it takes 0.184 s.
//
// Under load a read rarely has to wait, so Read first tries one that cannot:
// read(2) on the descriptor switched to O_NONBLOCK, as a raw system call
// that skips the Go scheduler's system-call bookkeeping. Only when the
// queue is empty does it switch the descriptor back and make a blocking
// read(2) through the scheduler (which may then hand the goroutine's P to
// other work while the thread sleeps); and while the queue keeps being found
// empty (a ping flood: one packet at a time) it tries the nonblocking read
// ever less often (see backoff). Busy, the reader goroutine therefore never
// enters the scheduler, and it is not locked to its thread: Go's sysmon
// preempts a goroutine that runs 10 ms without rescheduling, which for an
// unlocked goroutine is a cheap switch back to itself but for a locked one
// hands its thread off and back (futex wake-ups and thread switches, ~50
// times a second, with sysmon waking ~1000 times a second to police it,
// against ~100 now).
//
// A blocked read(2) cannot be woken by closing the descriptor, so Close
// does what the kernel does honour: it sets O_NONBLOCK on the queue and
// interrupts the read with SIGURG. The signal interrupts the read, Go's
// handler (SA_RESTART) restarts it, and the restarted read sees
// O_NONBLOCK and returns EAGAIN at once; a read that starts after the flag
// is set returns at once too. Because the reader is not locked to a thread,
// Close does not know which thread blocks, so it signals every thread of
// the process until no read is blocked: the Go runtime itself sends SIGURG
// to threads to preempt goroutines, so every Go program tolerates a
// spurious one.
//
// Read, Write and Close may be called concurrently (one reader at a time);
// the descriptor is closed when the last call in progress returns after
// Close.
type Queue struct {
	fd        int
	name      string // for errors: "tun IFNAME queue N"
	headerLen int    // VnetHdrLen if attached with IFF_VNET_HDR, else 0
	// state is the number of pins on the descriptor (Read and Write
	// calls in progress, loops that hold it open: see pinnedQueue), plus
	// closedBit once Close was called.
	state     atomic.Uint64
	blocked   atomic.Int32 // Reads in (or about to enter) a blocking read(2)
	closeOnce sync.Once

	// The reader's own state (one reader at a time).
	nonblocking bool    // the reader set O_NONBLOCK on fd (see readNoWait)
	noWait      backoff // when read tries a read that does not wait first
}

const closedBit = 1 << 63

// backoff spaces out attempts that keep failing, each of which costs a
// wasted system call: after a failure the next 1, then 3, 7, ... up to
// maxBackoff chances are skipped; a success resets it.
type backoff struct{ n, skip int }

// maxBackoff bounds how many chances a backoff skips in a row.
const maxBackoff = 63

// try reports whether to attempt this time.
func (b *backoff) try() bool {
	if b.skip > 0 {
		b.skip--
		return false
	}
	return true
}

func (b *backoff) failed()    { b.n = min(2*b.n+1, maxBackoff); b.skip = b.n }
func (b *backoff) succeeded() { b.n = 0 }

// newQueue wraps fd, a TUN queue attached in blocking mode. The Queue owns
// fd.
func newQueue(fd int, name string, headerLen int) *Queue {
	return &Queue{fd: fd, name: name, headerLen: headerLen}
}

// HeaderLen is the size of the virtio_net_hdr in front of every packet:
// VnetHdrLen for a queue attached with IFF_VNET_HDR, else 0 (so Run skips
// it without a VnetHdr wrapper).
func (q *Queue) HeaderLen() int { return q.headerLen }

// String names the queue for errors and logs.
func (q *Queue) String() string { return q.name }

// acquire pins the descriptor for one call; false once the queue is
// closed.
func (q *Queue) acquire() bool {
	if q.state.Add(1)&closedBit != 0 {
		q.release()
		return false
	}
	return true
}

// release ends a call; the last one out after Close closes the descriptor.
func (q *Queue) release() {
	if q.state.Add(^uint64(0)) == closedBit {
		q.closeOnce.Do(func() { unix.Close(q.fd) })
	}
}

// Read reads one packet (with its virtio_net_hdr, if any) into b, blocking
// until one comes. It returns os.ErrClosed after Close, and an error that
// is syscall.EBADFD once the device is deleted (a read blocked at that
// moment gets EFAULT from the kernel, tun_ring_recv's answer to a queue
// shut down under it; later ones get EBADFD).
func (q *Queue) Read(b []byte) (int, error) {
	if !q.acquire() {
		return 0, os.ErrClosed
	}
	defer q.release()
	n, _, err := q.read(b, nil)
	return n, err
}

// read is Read for a caller that holds a pin on the descriptor (acquire);
// it calls idle, if not nil, before it waits for a packet, and reports
// whether it waited (false: the packet was already queued).
func (q *Queue) read(b []byte, idle func()) (n int, waited bool, err error) {
	for {
		if q.noWait.try() {
			n, errno := q.readNoWait(b)
			switch errno {
			case 0:
				q.noWait.succeeded()
				return n, false, nil
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				// Empty: wait below, and try less often while the
				// queue keeps being found empty.
				q.noWait.failed()
			default:
				return 0, false, q.readError(errno)
			}
		}
		if idle != nil {
			idle()
		}
		n, err = q.readBlocking(b)
		switch {
		case err == nil:
			return n, true, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if q.state.Load()&closedBit != 0 {
				return 0, true, os.ErrClosed
			}
			// Nonblocking, but not by Close (someone shares the file):
			// wait like a blocking read would.
			if err := q.waitReadable(); err != nil {
				return 0, true, fmt.Errorf("%s: read: %w", q.name, err)
			}
			continue
		}
		return 0, true, q.readError(err.(unix.Errno))
	}
}

// readNoWait is a read(2) that does not wait: the descriptor is switched
// to O_NONBLOCK (if the last read waited) and read with a raw system call,
// which skips the scheduler's bookkeeping since it cannot block. A busy
// queue stays nonblocking, so this is one read(2) a packet, as in C. (It is
// cheaper than preadv2 with RWF_NOWAIT, whose iovec import and vectored
// read path cost ~3% of a packet's CPU time on a saturated reflector.)
func (q *Queue) readNoWait(b []byte) (int, unix.Errno) {
	if !q.nonblocking {
		if errno := q.setFlags(unix.O_NONBLOCK); errno != 0 {
			return 0, errno
		}
		q.nonblocking = true
	}
	r, _ := unix.RawSyscallNoError(unix.SYS_READ, uintptr(q.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return result(r)
}

// setFlags sets the descriptor's file status flags (F_SETFL): O_NONBLOCK
// or 0, the only status flags a queue ever has (the reader switches them,
// Close sets O_NONBLOCK). A raw system call, as F_SETFL does not block.
func (q *Queue) setFlags(flags int) unix.Errno {
	r, _ := unix.RawSyscallNoError(unix.SYS_FCNTL, uintptr(q.fd), unix.F_SETFL, uintptr(flags))
	_, errno := result(r)
	return errno
}

// result decodes a raw system call's return value: the kernel returns
// -errno for an error.
func result(r uintptr) (int, unix.Errno) {
	if n := int(r); n < 0 && n >= -4095 {
		return 0, unix.Errno(-n)
	}
	return int(r), 0
}

// readBlocking is read(2) through the scheduler, on the descriptor switched
// back to blocking, counted in q.blocked so that Close knows to interrupt
// it. Close sets O_NONBLOCK and then looks at q.blocked; if our switch to
// blocking came after Close's, the closed bit, set before, is visible after
// we count ourselves, so we return EAGAIN as the read would have.
func (q *Queue) readBlocking(b []byte) (int, error) {
	if q.nonblocking {
		if errno := q.setFlags(0); errno != 0 {
			return 0, errno
		}
		q.nonblocking = false
	}
	q.blocked.Add(1)
	defer q.blocked.Add(-1)
	if q.state.Load()&closedBit != 0 {
		return 0, unix.EAGAIN
	}
	return unix.Read(q.fd, b)
}

// readError wraps a failed read's errno.
func (q *Queue) readError(errno unix.Errno) error {
	if errno == unix.EFAULT {
		errno = unix.EBADFD
	}
	return &os.PathError{Op: "read", Path: q.name, Err: errno}
}

// waitReadable waits until the queue has a packet or an error, or Close
// was called. Like readBlocking it is counted in q.blocked, and it checks
// for Close after counting itself, since poll(2) ignores O_NONBLOCK.
func (q *Queue) waitReadable() error {
	q.blocked.Add(1)
	defer q.blocked.Add(-1)
	pfd := []unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}}
	for q.state.Load()&closedBit == 0 {
		if _, err := unix.Poll(pfd, -1); err != unix.EINTR {
			return err
		}
	}
	return nil
}

// Write writes one packet (with its virtio_net_hdr, if any). It is a raw
// system call that does not tell Go's scheduler it may block: a TUN write
// never waits for anything (the packet goes straight into the network
// stack; a TUN socket's send buffer is INT_MAX unless TUNSETSNDBUF lowers
// it, which netlab never does), and skipping the scheduler's bookkeeping
// made a ping flood pinned to one CPU 12% faster (bench.sh "ping 1cpu":
// 0.373 s against 0.425 s per 20k pings with write(2) through Syscall; C
// 0.358 s).
func (q *Queue) Write(b []byte) (int, error) {
	if !q.acquire() {
		return 0, os.ErrClosed
	}
	defer q.release()
	return q.write(b)
}

// write is Write for a caller that holds a pin on the descriptor.
func (q *Queue) write(b []byte) (int, error) {
	for {
		// RawSyscallNoError is the SYSCALL instruction and nothing
		// else; the kernel returns -errno.
		r, _ := unix.RawSyscallNoError(unix.SYS_WRITE, uintptr(q.fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		n, errno := result(r)
		if errno == 0 {
			return n, nil
		}
		if errno != unix.EINTR {
			return 0, &os.PathError{Op: "write", Path: q.name, Err: errno}
		}
	}
}

// Close stops the queue: a Read blocked in read(2) returns os.ErrClosed,
// later calls return it at once, and the descriptor is closed when no call
// is in progress any more (the attached queue goes with it; the device
// persists). It may be called more than once.
func (q *Queue) Close() error {
	// Pin the descriptor while setting the closed bit, so it stays open
	// (and its number is not reused) until we are done with it.
	for {
		s := q.state.Load()
		if s&closedBit != 0 {
			return nil
		}
		if q.state.CompareAndSwap(s, (s|closedBit)+1) {
			break
		}
	}
	defer q.release()
	if errno := q.setFlags(unix.O_NONBLOCK); errno != 0 {
		return fmt.Errorf("%s: close: set nonblock: %w", q.name, errno)
	}
	// After the flag: a read that starts now returns at once; one that
	// started before is counted in blocked (both are atomics) and is
	// interrupted by the signal.
	for wait := 50 * time.Microsecond; q.blocked.Load() > 0; wait = min(2*wait, 10*time.Millisecond) {
		if err := signalThreads(unix.SIGURG); err != nil {
			return fmt.Errorf("%s: close: wake reader: %w", q.name, err)
		}
		time.Sleep(wait)
	}
	return nil
}

// pinnedQueue is a Queue as the one loop that reads it uses it (see
// readPackets and runQueue): the loop holds a pin on the descriptor from
// start to end, so Read and Write skip acquire and release, two atomic
// additions each. On a TCP stream through a reflector pinned to its own CPU
// those four per packet were a third of the reflector's own (user) CPU
// time: each misses the cache that the kernel's work for the packet has
// just churned.
type pinnedQueue struct{ q *Queue }

func (p pinnedQueue) Read(b []byte) (int, error) {
	n, _, err := p.q.read(b, nil)
	return n, err
}
func (p pinnedQueue) Write(b []byte) (int, error) { return p.q.write(b) }
func (p pinnedQueue) Close() error                { return p.q.Close() }

// signalThreads sends sig to every thread of this process.
func signalThreads(sig unix.Signal) error {
	tids, err := threads()
	if err != nil {
		return err
	}
	pid := unix.Getpid()
	var errs []error
	for _, tid := range tids {
		if err := unix.Tgkill(pid, tid, sig); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("thread %d: %w", tid, err))
		}
	}
	return errors.Join(errs...)
}
