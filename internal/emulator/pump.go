package emulator

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/linkmodel"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// clock is the emulator's time: durations since it started, read from the
// runtime's monotonic clock (CLOCK_MONOTONIC, through the vDSO), and the
// same instants as CLOCK_MONOTONIC values for timerfd.
type clock struct {
	start time.Time
	mono  time.Duration // CLOCK_MONOTONIC at start
}

func newClock() (*clock, error) {
	var ts unix.Timespec
	start := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, fmt.Errorf("clock_gettime: %w", err)
	}
	return &clock{start: start, mono: time.Duration(ts.Nano())}, nil
}

func (c *clock) now() time.Duration { return time.Since(c.start) }

// timer is a timerfd its scheduler blocks on in a read(2) of its own, on a
// thread of its own (runtime.LockOSThread): the kernel wakes that very
// thread at the time armed, to its hrtimer's precision. The runtime's own
// timers round to the millisecond its netpoller sleeps in, and a timerfd
// behind the netpoller waits for some thread to notice it (measured here:
// 100 µs late at the median, against tens of µs blocked on the fd).
type timer struct {
	c       *clock
	fd      int
	armed   time.Duration // 0: disarmed
	stopped atomic.Bool
}

func newTimer(c *clock) (*timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	return &timer{c: c, fd: fd}, nil
}

// arm sets the timer to fire at t (the clock's time); ok false disarms it.
// A timer already set for t is left alone (no system call).
func (t *timer) arm(at time.Duration, ok bool) error {
	if !ok {
		at = 0
	}
	if at == t.armed {
		return nil
	}
	t.armed = at
	var spec unix.ItimerSpec
	if ok {
		// A time already past fires at once; CLOCK_MONOTONIC is never 0.
		spec.Value = unix.NsecToTimespec(int64(t.c.mono + max(at, 1)))
	}
	return unix.TimerfdSettime(t.fd, unix.TFD_TIMER_ABSTIME, &spec, nil)
}

// errStopped is wait's error once the timer is stopped.
var errStopped = errors.New("timer stopped")

// wait blocks until the timer fires; errStopped once stop was called.
func (t *timer) wait() error {
	var b [8]byte
	for {
		if t.stopped.Load() {
			return errStopped
		}
		_, err := unix.Read(t.fd, b[:])
		if t.stopped.Load() {
			return errStopped
		}
		if err == nil || errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// stop wakes the waiter for good (the timer fires at once).
func (t *timer) stop() {
	t.stopped.Store(true)
	spec := unix.ItimerSpec{Value: unix.Timespec{Nsec: 1}}
	unix.TimerfdSettime(t.fd, 0, &spec, nil)
}

// close releases the descriptor, once its waiter has returned.
func (t *timer) close() error { return unix.Close(t.fd) }

// frame is a frame in the model: its bytes (virtio_net_hdr, then the
// Ethernet frame), in a buffer of the pump's or the reader's own (scratch:
// not yet copied).
type frame struct {
	b       []byte
	big     bool
	scratch bool
	sent    bool
	due     time.Duration // when the model let it go
}

// pools of frame buffers: most frames fit a small one (an MTU of 9000 and
// the headers); a GSO super-frame needs a big one.
var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, 9216); return &b }}
	bigBufs   = sync.Pool{New: func() any { b := make([]byte, maxFrame); return &b }}
	frames    = sync.Pool{New: func() any { return new(frame) }}
)

// keep copies a frame's bytes into a buffer of the pool, for a frame that
// stays in the model after its reader's buffer is reused.
func (f *frame) keep() {
	pool, big := &smallBufs, false
	if len(f.b) > 9216 {
		pool, big = &bigBufs, true
	}
	bp := pool.Get().(*[]byte)
	n := copy(*bp, f.b)
	f.b, f.big, f.scratch = (*bp)[:n], big, false
}

// release gives a frame and its buffer back.
func (f *frame) release() {
	if !f.scratch && f.b != nil {
		b := f.b[:cap(f.b)]
		if f.big {
			bigBufs.Put(&b)
		} else {
			smallBufs.Put(&b)
		}
	}
	*f = frame{}
	frames.Put(f)
}

// pump moves the frames one TAP sends into the other, through one
// direction's model.
type pump struct {
	name     string // "a->b"
	src, dst *os.File
	// plain says frames from src must reach dst whole: dst is a port of
	// Open vSwitch's userspace datapath, which finishes no checksum and
	// cuts no super-frame, so src gets no offloads at all.
	plain bool
	clock *clock
	timer *timer

	mu        sync.Mutex // guards model, timer and lead
	model     *linkmodel.Model[*frame]
	perPacket bool // src's offloads are set for a model that acts per frame
	// lead is how much ahead of a departure the timer is armed: the
	// scheduler's wake-up lag as it measures it (a moving average, at most
	// maxLead), so frames leave on time on average rather than late by it
	// every time; a frame then leaves at most lead early.
	lead time.Duration
	// spin is the time the scheduler spent this second (since spinFrom)
	// waiting out the last stretch before a departure on the CPU
	// (spinAhead, within spinBudget a second).
	spin, spinFrom time.Duration

	// readStop is an eventfd that ends the reader's poll (stopRead), with
	// readStopped for a reader that finds frames without polling.
	readStop    int
	readStopped atomic.Bool

	wmu       sync.Mutex // held while writing to dst, taken before mu is released
	writeErrs atomic.Uint64
	late      lateness // under wmu
}

// lateness is a histogram of how late frames left: the time of their
// write less the time the model let them go (one that left early, by at
// most maxLead, counts as on time). 10 µs buckets up to 100 ms.
type lateness struct {
	buckets [10000]uint32
	n       uint64
	max     time.Duration
}

const lateBucket = 10 * time.Microsecond

func (l *lateness) add(d time.Duration) {
	d = max(d, 0)
	i := min(int(d/lateBucket), len(l.buckets)-1)
	l.buckets[i]++
	l.n++
	l.max = max(l.max, d)
}

// quantile is the lateness below which a share q of the frames left (the
// upper edge of its bucket).
func (l *lateness) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(l.n)))
	var seen uint64
	for i, c := range l.buckets {
		seen += uint64(c)
		if seen >= want {
			return min(time.Duration(i+1)*lateBucket, l.max)
		}
	}
	return l.max
}

// Lateness summarises how late a direction's frames left.
type Lateness struct {
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// lateStats summarises the histogram; wmu is taken.
func (p *pump) lateStats() Lateness {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return Lateness{P50: p.late.quantile(0.5), P99: p.late.quantile(0.99), Max: p.late.max}
}

// offloads are what src may hand over: super-frames only to a model that
// takes them whole; nothing at all when dst is an Open vSwitch port.
func (p *pump) offloads() tundev.Offload {
	switch {
	case p.plain:
		return 0
	case p.perPacket:
		return tundev.OffloadCsum
	}
	return tundev.OffloadGSO
}

// setOffloads tells the kernel what src may hand over.
// Equivalent to: what a VM's virtio driver negotiates (TUNSETOFFLOAD).
func (p *pump) setOffloads() error {
	rc, err := p.src.SyscallConn()
	if err != nil {
		return err
	}
	off := p.offloads()
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, int(off))
		if errors.Is(serr, unix.EINVAL) && off&(tundev.OffloadUSO4|tundev.OffloadUSO6) != 0 {
			serr = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, int(off&^(tundev.OffloadUSO4|tundev.OffloadUSO6)))
		}
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("%s: TUNSETOFFLOAD %#x: %w", p.name, uint(off), err)
	}
	return nil
}

// setParams changes the model in place: nothing queued is lost. The
// source's offloads follow (a model that acts per frame gets frames, not
// super-frames).
func (p *pump) setParams(params linkmodel.Params) error {
	p.mu.Lock()
	err := p.model.SetParams(params, p.clock.now())
	if err == nil {
		err = p.rearm()
	}
	per := params.PerPacket()
	changed := per != p.perPacket
	p.perPacket = per
	p.mu.Unlock()
	p.wmu.Lock()
	p.late = lateness{} // counted afresh for each model
	p.wmu.Unlock()
	if err == nil && changed && !p.plain {
		err = p.setOffloads()
	}
	return err
}

// maxLead bounds lead: a frame never leaves earlier than this.
const maxLead = 150 * time.Microsecond

// spinAhead is how long before a departure the scheduler wakes to wait out
// the rest on the CPU, and spinBudget how much of each second it may
// spend so. A timer's wake-up comes late now and then by far more than
// its median: on this project's virtual machines a real-time thread on a
// timerfd was 3.4 ms late at p99 (0.08 ms at the median), and 0.4 ms when
// it woke 1 ms early and spun the rest. Sparse traffic (probes, pings,
// handshakes, what a delay is measured with) gets that precision; a busy
// link spends at most the budget, then leaves on the timer alone.
const (
	spinAhead  = time.Millisecond
	spinBudget = 50 * time.Millisecond
)

// rearm sets the timer for the model's next departure, lead ahead (or
// spinAhead, when the budget allows); mu is held.
func (p *pump) rearm() error {
	due, ok := p.model.Due()
	ahead := p.lead
	if p.spinLeft(p.clock.now()) {
		ahead = max(ahead, spinAhead)
	}
	return p.timer.arm(max(due-ahead, 1), ok)
}

// spinLeft says whether this second's spin budget is not spent; mu is held.
func (p *pump) spinLeft(now time.Duration) bool {
	if now-p.spinFrom >= time.Second {
		p.spin, p.spinFrom = 0, now
	}
	return p.spin < spinBudget
}

// spinUntil waits on the CPU until the model's next departure, if it is
// within spinAhead and the budget allows; mu is held, and released while
// it spins (a frame read meanwhile may be queued). It returns the time.
func (p *pump) spinUntil(now time.Duration) time.Duration {
	due, ok := p.model.Due()
	if !ok || due <= now+p.lead || due-now > spinAhead || !p.spinLeft(now) {
		return now
	}
	p.mu.Unlock()
	start := now
	for now < due && !p.timer.stopped.Load() {
		now = p.clock.now()
	}
	p.mu.Lock()
	p.spin += now - start
	return now
}

// learnLag folds one wake-up's lag (how long after the time armed the
// scheduler ran) into lead; outliers (the machine busy elsewhere) count
// no more than twice the lead so far.
func (p *pump) learnLag(lag time.Duration) {
	lag = min(max(lag, 0), 2*p.lead+50*time.Microsecond)
	p.lead = min(p.lead+(lag-p.lead)/16, maxLead)
}

// stats are the model's counters; mu is taken.
func (p *pump) stats() linkmodel.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.model.Stats()
}

// traceStart is the wall time the trace in force began; zero without one.
func (p *pump) traceStart() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.model.TraceEpoch(); ok {
		return p.clock.start.Add(e)
	}
	return time.Time{}
}

// newReadStop makes the eventfd that stops the reader.
func (p *pump) newReadStop() error {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	p.readStop = fd
	return nil
}

// stopRead ends the reader (read returns nil); src stays open until the
// caller closes it, once read has returned.
func (p *pump) stopRead() {
	p.readStopped.Store(true)
	unix.Write(p.readStop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
}

// closeReadStop releases the eventfd, once the reader has returned.
func (p *pump) closeReadStop() { unix.Close(p.readStop) }

// read runs the reader: each frame read from src is given its fate and
// queued, and what is due by now (it, or others) is written at once. It
// returns nil once stopRead was called.
//
// It reads on a thread of its own, blocked in poll(2) on the TAP, which the
// kernel wakes when a frame comes, as the scheduler's timer does: a read
// through the runtime's netpoller waits for some thread to notice the
// frame, and a delay's round trip waits on four such wake-ups.
func (p *pump) read() error {
	runtime.LockOSThread() // the thread poll blocks; it ends with the goroutine
	rc, err := p.src.SyscallConn()
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	// Never blocked in read(2): poll says when there is a frame.
	if err := unix.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(p.readStop), Events: unix.POLLIN}}
	buf := make([]byte, maxFrame)
	var out []*frame
	var h tundev.VnetHdr
	for {
		if p.readStopped.Load() {
			return nil
		}
		n, err := unix.Read(fd, buf)
		if err != nil {
			switch {
			case errors.Is(err, unix.EAGAIN):
				if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
					return fmt.Errorf("%s: poll: %w", p.name, err)
				}
			case errors.Is(err, unix.EINTR):
			default:
				return fmt.Errorf("%s: read: %w", p.name, err)
			}
			continue
		}
		pkt := buf[:n]
		if n < tundev.VnetHdrLen+ethHdrLen || h.Decode(pkt) != nil {
			continue
		}
		size, region := frameSizes(pkt, &h)
		now := p.clock.now()
		p.mu.Lock()
		fate := p.model.Decide(size, region)
		if fate.Drop {
			p.mu.Unlock()
			continue
		}
		if fate.CorruptBit >= 0 {
			corrupt(pkt, &h, fate.CorruptBit)
		}
		f := frames.Get().(*frame)
		f.b, f.scratch = pkt, true
		if !p.model.Push(now, size, f) {
			f.release()
			f = nil
		}
		if fate.Copies == 2 {
			d := frames.Get().(*frame)
			d.b = pkt
			d.keep()
			if !p.model.Push(now, size, d) {
				d.release()
			}
		}
		out = out[:0]
		p.model.Pop(now, func(x *frame, due time.Duration) { x.sent, x.due = true, due; out = append(out, x) })
		if f != nil && !f.sent {
			f.keep() // it waits: the next read reuses buf
		}
		err = p.rearm()
		if len(out) == 0 {
			p.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%s: timer: %w", p.name, err)
			}
			continue
		}
		p.wmu.Lock()
		p.mu.Unlock()
		p.write(out)
		p.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("%s: timer: %w", p.name, err)
		}
	}
}

// schedule runs the scheduler, on a thread of its own: it sleeps until the
// model's next departure and writes what leaves then. It returns nil once
// the timer is stopped.
func (p *pump) schedule() error {
	runtime.LockOSThread() // the thread the timer wakes; it ends with the goroutine
	for {
		if err := p.timer.wait(); err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			return fmt.Errorf("%s: timer: %w", p.name, err)
		}
		p.mu.Lock()
		now := p.clock.now()
		if p.timer.armed != 0 {
			p.learnLag(now - p.timer.armed)
		}
		p.timer.armed = 0 // it fired: arm again even for the same time
		now = p.spinUntil(now)
		var out []*frame
		p.model.Pop(now+p.lead, func(x *frame, due time.Duration) { x.sent, x.due = true, due; out = append(out, x) })
		err := p.rearm()
		if len(out) == 0 {
			p.mu.Unlock()
		} else {
			p.wmu.Lock()
			p.mu.Unlock()
			p.write(out)
			p.wmu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("%s: timer: %w", p.name, err)
		}
	}
}

// write sends frames into dst in order and gives their buffers back; wmu
// is held. A frame dst will not take (it is down: EIO) is counted.
func (p *pump) write(out []*frame) {
	for _, f := range out {
		p.late.add(p.clock.now() - f.due)
		if _, err := p.dst.Write(f.b); err != nil {
			p.writeErrs.Add(1)
		}
		f.release()
	}
}

// drain gives back the buffers of what the model still holds, once the
// pump has stopped.
func (p *pump) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.model.Drain(func(f *frame) {
		if !f.scratch {
			f.release()
		}
	})
}
