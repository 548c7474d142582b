package reflector

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Queue is one attached TUN queue used the way a C reflector uses it: a
// blocking file descriptor, read(2) and write(2) called directly on the
// goroutine's thread. An *os.File would be nonblocking and go through Go's
// network poller, which costs an epoll wake-up and a goroutine switch for
// every packet that finds the queue empty: on a ping flood pinned to one CPU
// (bench.sh "ping 1cpu") that took 0.235 s per 10k pings against C's 0.185
// s; this way it takes 0.184 s. (Polling a pipe or eventfd next to the queue
// only when idle would stop it more simply, but costs a failed read and a
// poll(2), about 1.2 us, per wake-up: 7% of a ping's round trip.)
//
// A blocked read(2) cannot be woken by closing the descriptor, so Close
// does what the kernel does honour: it sets O_NONBLOCK on the queue and
// sends SIGURG to the thread of the goroutine bound as its reader (see
// bindReader; Run binds itself). The signal interrupts the read, Go's
// handler (SA_RESTART) restarts it, and the restarted read sees
// O_NONBLOCK and returns EAGAIN at once; a read that starts after the flag
// is set returns at once too. The Go runtime itself sends SIGURG to
// threads to preempt goroutines, so every Go program tolerates a spurious
// one.
//
// Read, Write and Close may be called concurrently (one reader at a time);
// the descriptor is closed when the last call in progress returns after
// Close.
type Queue struct {
	fd        int
	name      string // for errors: "tun IFNAME queue N"
	headerLen int    // VnetHdrLen if attached with IFF_VNET_HDR, else 0
	// state is the number of Read/Write calls in progress, plus
	// closedBit once Close was called.
	state     atomic.Uint64
	reader    atomic.Int64 // thread id of the bound reader, 0 if none
	closeOnce sync.Once
}

const closedBit = 1 << 63

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
	for {
		n, err := unix.Read(q.fd, b)
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if q.state.Load()&closedBit != 0 {
				return 0, os.ErrClosed
			}
			// Nonblocking, but not by Close (someone shares the file):
			// wait like a blocking read would.
			if err := q.waitReadable(); err != nil {
				return 0, fmt.Errorf("%s: read: %w", q.name, err)
			}
			continue
		case err == unix.EFAULT:
			err = unix.EBADFD
		}
		return 0, &os.PathError{Op: "read", Path: q.name, Err: err}
	}
}

// waitReadable waits until the queue has a packet or an error.
func (q *Queue) waitReadable() error {
	pfd := []unix.PollFd{{Fd: int32(q.fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(pfd, -1)
		if err != unix.EINTR {
			return err
		}
		if q.state.Load()&closedBit != 0 {
			return nil
		}
	}
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
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(q.fd), uintptr(p), uintptr(len(b)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, &os.PathError{Op: "write", Path: q.name, Err: errno}
		}
		return int(n), nil
	}
}

// Close stops the queue: a Read blocked in the bound reader returns
// os.ErrClosed, later calls return it at once, and the descriptor is closed
// when no call is in progress any more (the attached queue goes with it;
// the device persists). It may be called more than once.
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
	var errs []error
	if err := unix.SetNonblock(q.fd, true); err != nil {
		errs = append(errs, fmt.Errorf("set nonblock: %w", err))
	}
	// After the flag: a reader bound later reads with O_NONBLOCK already
	// set; one bound earlier is visible here (both are atomics).
	if tid := q.reader.Load(); tid != 0 {
		if err := unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("wake reader: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", q.name, err)
	}
	return nil
}

// bindReader locks the calling goroutine to its thread and records the
// thread as the queue's reader, so Close can wake it; call the returned
// function when done reading. Run does this for a Device that has it.
func (q *Queue) bindReader() (unbind func()) {
	runtime.LockOSThread()
	q.reader.Store(int64(unix.Gettid()))
	return func() {
		q.reader.Store(0)
		runtime.UnlockOSThread()
	}
}

// readerBinder is a Device whose blocked Read Close can only wake in a
// goroutine bound with bindReader.
type readerBinder interface {
	bindReader() (unbind func())
}
