package linkmodel

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Model is one direction of a link. Its methods are not safe for concurrent
// use: the emulator holds a lock around them. Times are durations since an
// epoch of the caller's choosing (its clock); one earlier than a time the
// model was given before is taken as that one (a caller that pops a little
// ahead of its clock, as the emulator does, never moves the model back).
type Model[P any] struct {
	p     Params
	rng   *rand.Rand
	stats Stats
	clock time.Duration // the latest time given

	// The link's queue (frames waiting for the rate or the trace).
	q      []*item[P]
	qHead  int
	qBytes int
	// The token bucket: tok bytes at time tokAt.
	tok   float64
	tokAt time.Duration
	// The trace: its epoch, and the next opportunity not yet used, as the
	// loop and the entry within it.
	epoch     time.Duration
	loop      int64
	idx       int
	traceSum  string
	oppBytes  int
	geBad     bool
	line      []*item[P] // the delay line: a min-heap by departure
	lineBytes int
	// last is the departure of the last frame put on the line in order:
	// later ones leave no earlier (no reordering unless asked).
	last time.Duration
	seq  uint64
}

type item[P any] struct {
	pkt    P
	size   int
	arrive time.Duration
	left   int // bytes the trace has yet to deliver
	depart time.Duration
	seq    uint64
}

// Stats count what the model did, since it was made.
type Stats struct {
	In       uint64 `json:"in"`
	InBytes  uint64 `json:"in_bytes"`
	Out      uint64 `json:"out"`
	OutBytes uint64 `json:"out_bytes"`
	// Lost are frames the loss model took (random or Gilbert-Elliott);
	// Dropped those a full queue refused (tail drop); Overflow those over
	// MaxBytes.
	Lost       uint64 `json:"lost"`
	Dropped    uint64 `json:"dropped"`
	Overflow   uint64 `json:"overflow"`
	Duplicated uint64 `json:"duplicated"`
	Corrupted  uint64 `json:"corrupted"`
	Reordered  uint64 `json:"reordered"`
	// Queued and InFlight are the frames waiting for the link and on the
	// delay line now; QueuedBytes the bytes of both.
	Queued      int `json:"queued"`
	InFlight    int `json:"in_flight"`
	QueuedBytes int `json:"queued_bytes"`
}

// New makes a model with parameters p at time now; seed makes its random
// choices reproducible.
func New[P any](p Params, seed uint64, now time.Duration) (*Model[P], error) {
	m := &Model[P]{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if err := m.SetParams(p, now); err != nil {
		return nil, err
	}
	return m, nil
}

// tick is now, or the latest time the model was given if that is later.
func (m *Model[P]) tick(now time.Duration) time.Duration {
	m.clock = max(m.clock, now)
	return m.clock
}

// Params are the parameters in force.
func (m *Model[P]) Params() Params { return m.p }

// TraceEpoch is when the trace in force began (its time 0, on the model's
// clock); ok is false without a trace.
func (m *Model[P]) TraceEpoch() (time.Duration, bool) { return m.epoch, m.p.Trace != nil }

// SetParams changes the parameters at time now. Nothing queued is dropped:
// frames on the delay line keep their departure, frames waiting for the
// link are served from now on at the new rate or trace (all at once when
// neither is left), and a full queue only refuses new frames. A trace that
// stays the same keeps its place; a new one starts now.
func (m *Model[P]) SetParams(p Params, now time.Duration) error {
	if err := p.Check(); err != nil {
		return err
	}
	now = m.tick(now)
	old := m.p
	// Bring the bucket up to now under the old rate, then the new one
	// takes over (a new bucket starts full).
	if old.Rate != 0 && p.Rate != 0 {
		m.tok = math.Min(m.tokensAt(now), p.burst())
	} else {
		m.tok = p.burst()
	}
	m.tokAt = now
	if p.Trace != nil && (old.Trace == nil || old.Trace.Sum != p.Trace.Sum || p.Trace.Sum == "") {
		m.epoch, m.loop, m.idx = now, 0, 0
		m.traceSum = p.Trace.Sum
	}
	if p.GE.IsZero() {
		m.geBad = false
	}
	m.p = p
	if m.oppBytes == 0 {
		m.oppBytes = DefaultOppBytes
	}
	if !m.queued() {
		// No rate or trace any more: what waited for the link goes on.
		for m.qLen() > 0 {
			m.toLine(m.qPop(), now)
		}
	}
	return nil
}

// SetOppBytes sets the bytes one trace opportunity delivers: the link's MTU
// (default DefaultOppBytes, Mahimahi's 1500).
func (m *Model[P]) SetOppBytes(n int) {
	if n > 0 {
		m.oppBytes = n
	}
}

// queued says whether frames wait for the link (a rate or a trace).
func (m *Model[P]) queued() bool { return m.p.Rate != 0 || m.p.Trace != nil }

// Fate is what Decide makes of an arriving frame.
type Fate struct {
	// Drop: the loss model took it.
	Drop bool
	// Copies is 1, or 2 for a duplicated frame.
	Copies int
	// CorruptBit is the bit to flip, counted from the start of the region
	// the caller named; -1: none.
	CorruptBit int
}

// Decide draws the fate of a frame of size bytes arriving: lost,
// duplicated, corrupted (a bit of the region bytes the caller may flip; 0:
// none may be). The frame is counted in.
func (m *Model[P]) Decide(size, region int) Fate {
	m.stats.In++
	m.stats.InBytes += uint64(size)
	f := Fate{Copies: 1, CorruptBit: -1}
	if m.lose() {
		m.stats.Lost++
		f.Drop = true
		return f
	}
	if m.p.Duplicate > 0 && m.chance(m.p.Duplicate) {
		f.Copies = 2
		m.stats.Duplicated++
	}
	if m.p.Corrupt > 0 && region > 0 && m.chance(m.p.Corrupt) {
		f.CorruptBit = m.rng.IntN(region * 8)
		m.stats.Corrupted++
	}
	return f
}

// chance is true with probability pct percent.
func (m *Model[P]) chance(pct float64) bool { return m.rng.Float64()*100 < pct }

// lose runs the loss model for one frame: Gilbert-Elliott (the loss drawn
// in the state the frame finds, then the chain moves, as netem's
// loss_gilb_ell), or independent losses.
func (m *Model[P]) lose() bool {
	g := m.p.GE
	if g.IsZero() {
		return m.p.Loss > 0 && m.chance(m.p.Loss)
	}
	var lost bool
	if m.geBad {
		lost = m.chance(g.LossBad)
		if m.chance(g.R) {
			m.geBad = false
		}
	} else {
		lost = m.chance(g.LossGood)
		if m.chance(g.P) {
			m.geBad = true
		}
	}
	return lost
}

// Push queues a frame of size bytes that arrived at now. It returns false
// when the queue refused it (full: tail drop; or over MaxBytes), which is
// counted.
func (m *Model[P]) Push(now time.Duration, size int, pkt P) bool {
	now = m.tick(now)
	if m.qBytes+m.lineBytes+size > MaxBytes {
		m.stats.Overflow++
		return false
	}
	frames, bytes := m.p.limits()
	n, b := len(m.line), m.lineBytes
	if m.queued() {
		n, b = m.qLen(), m.qBytes
	}
	if (frames > 0 && n >= frames) || (bytes > 0 && b+size > bytes) {
		m.stats.Dropped++
		return false
	}
	it := &item[P]{pkt: pkt, size: size, arrive: now, left: size}
	if !m.queued() {
		m.toLine(it, now)
		return true
	}
	m.q = append(m.q, it)
	m.qBytes += size
	return true
}

// toLine puts a frame that left the link's queue at t on the delay line.
func (m *Model[P]) toLine(it *item[P], t time.Duration) {
	if m.p.Reorder > 0 && m.chance(m.p.Reorder) {
		it.depart = t // sent at once, past those delayed
		m.stats.Reordered++
	} else {
		it.depart = max(t+jittered(m.p.Delay, m.p.Jitter, m.p.Distribution, m.rng), m.last)
		m.last = it.depart
	}
	m.seq++
	it.seq = m.seq
	m.lineBytes += it.size
	m.heapPush(it)
}

// Due is the time at which Pop next has something to do: a frame leaves
// the line, or the link's queue, then. ok is false when the model holds
// nothing.
func (m *Model[P]) Due() (time.Duration, bool) {
	t, ok := time.Duration(0), false
	if len(m.line) > 0 {
		t, ok = m.line[0].depart, true
	}
	if m.qLen() > 0 {
		e := m.headExit()
		if !ok || e < t {
			t, ok = e, true
		}
	}
	return t, ok
}

// Pop hands emit every frame that leaves the link by now, in the order
// they leave, with the time each was due to (its lateness is the caller's
// own: how late it called).
func (m *Model[P]) Pop(now time.Duration, emit func(P, time.Duration)) {
	now = m.tick(now)
	if m.p.Trace != nil {
		m.serveTrace(now)
	} else if m.p.Rate != 0 {
		for m.qLen() > 0 {
			t := m.rateExit(m.q[m.qHead])
			if t > now {
				break
			}
			it := m.qPop()
			m.tok = m.tokensAt(t) - float64(it.size)
			m.tokAt = t
			m.toLine(it, t)
		}
	}
	for len(m.line) > 0 && m.line[0].depart <= now {
		it := m.heapPop()
		m.lineBytes -= it.size
		m.stats.Out++
		m.stats.OutBytes += uint64(it.size)
		emit(it.pkt, it.depart)
	}
}

// Stats are the counters, with what the model holds now.
func (m *Model[P]) Stats() Stats {
	s := m.stats
	s.Queued, s.InFlight, s.QueuedBytes = m.qLen(), len(m.line), m.qBytes+m.lineBytes
	return s
}

// Drain hands every frame the model holds to emit, in no particular order,
// and forgets them: for a caller that stops and must give buffers back.
func (m *Model[P]) Drain(emit func(P)) {
	for m.qLen() > 0 {
		emit(m.qPop().pkt)
	}
	for _, it := range m.line {
		emit(it.pkt)
	}
	m.line, m.lineBytes = nil, 0
}

// headExit is when the head of the link's queue leaves it.
func (m *Model[P]) headExit() time.Duration {
	h := m.q[m.qHead]
	if m.p.Trace != nil {
		return m.traceExit(h)
	}
	return m.rateExit(h)
}

// tokensAt is the bucket's bytes at t (no earlier than tokAt).
func (m *Model[P]) tokensAt(t time.Duration) float64 {
	if m.p.Rate == 0 {
		return m.tok
	}
	return math.Min(m.p.burst(), m.tok+float64(t-m.tokAt)*float64(m.p.Rate)/8/1e9)
}

// rateExit is when the bucket lets it go: once it holds the frame's bytes
// (or a full bucket, for a frame larger than the bucket, which then goes
// into debt).
func (m *Model[P]) rateExit(it *item[P]) time.Duration {
	t0 := max(it.arrive, m.tokAt)
	tok := m.tokensAt(t0)
	need := math.Min(float64(it.size), m.p.burst())
	if tok >= need {
		return t0
	}
	perNS := float64(m.p.Rate) / 8 / 1e9
	return t0 + time.Duration(math.Ceil((need-tok)/perNS))
}

// oppAt is the time of the opportunity at entry idx of loop.
func (m *Model[P]) oppAt(loop int64, idx int) time.Duration {
	return m.epoch + time.Duration(loop)*m.p.Trace.Period() + time.Duration(m.p.Trace.MS[idx])*time.Millisecond
}

// seekOpp is the first opportunity at or after t (as loop and entry), no
// earlier than the one given.
func (m *Model[P]) seekOpp(loop int64, idx int, t time.Duration) (int64, int) {
	if m.oppAt(loop, idx) >= t {
		return loop, idx
	}
	tr := m.p.Trace
	period := tr.Period()
	rel := t - m.epoch
	l := int64(rel / period)
	off := rel - time.Duration(l)*period
	if off == 0 && l > 0 {
		// The last entry of the loop before lies at the same time as the
		// first of this one.
		l, off = l-1, period
	}
	i := sort.Search(len(tr.MS), func(i int) bool { return time.Duration(tr.MS[i])*time.Millisecond >= off })
	if i == len(tr.MS) {
		l, i = l+1, 0
	}
	return l, i
}

// serveTrace uses every opportunity up to now: each delivers up to
// oppBytes from the head of the queue, of frames that had arrived by then,
// a frame larger than what is left going on at the next (Mahimahi's
// LinkQueue); an opportunity nothing uses is lost.
func (m *Model[P]) serveTrace(now time.Duration) {
	for {
		t := m.oppAt(m.loop, m.idx)
		if t > now {
			return
		}
		if m.qLen() == 0 || m.q[m.qHead].arrive > t {
			next := now + 1
			if m.qLen() > 0 {
				next = min(next, m.q[m.qHead].arrive)
			}
			m.loop, m.idx = m.seekOpp(m.loop, m.idx, next)
			continue
		}
		budget := m.oppBytes
		for budget > 0 && m.qLen() > 0 && m.q[m.qHead].arrive <= t {
			h := m.q[m.qHead]
			take := min(h.left, budget)
			h.left -= take
			budget -= take
			if h.left == 0 {
				m.toLine(m.qPop(), t)
			}
		}
		m.idx++
		if m.idx == len(m.p.Trace.MS) {
			m.loop, m.idx = m.loop+1, 0
		}
	}
}

// traceExit is the opportunity at which the head of the queue is fully
// delivered.
func (m *Model[P]) traceExit(h *item[P]) time.Duration {
	loop, idx := m.seekOpp(m.loop, m.idx, h.arrive)
	for left := h.left; ; {
		left -= m.oppBytes
		if left <= 0 {
			return m.oppAt(loop, idx)
		}
		idx++
		if idx == len(m.p.Trace.MS) {
			loop, idx = loop+1, 0
		}
	}
}

func (m *Model[P]) qLen() int { return len(m.q) - m.qHead }

func (m *Model[P]) qPop() *item[P] {
	it := m.q[m.qHead]
	m.q[m.qHead] = nil
	m.qHead++
	m.qBytes -= it.size
	if m.qHead == len(m.q) {
		m.q, m.qHead = m.q[:0], 0
	} else if m.qHead > 1024 && m.qHead*2 > len(m.q) {
		n := copy(m.q, m.q[m.qHead:])
		clear(m.q[n:])
		m.q, m.qHead = m.q[:n], 0
	}
	return it
}

// The delay line's heap, by departure, then by the order frames were put
// on it.
func (m *Model[P]) less(i, j int) bool {
	a, b := m.line[i], m.line[j]
	return a.depart < b.depart || a.depart == b.depart && a.seq < b.seq
}

func (m *Model[P]) heapPush(it *item[P]) {
	m.line = append(m.line, it)
	for i := len(m.line) - 1; i > 0; {
		parent := (i - 1) / 2
		if !m.less(i, parent) {
			break
		}
		m.line[i], m.line[parent] = m.line[parent], m.line[i]
		i = parent
	}
}

func (m *Model[P]) heapPop() *item[P] {
	top := m.line[0]
	n := len(m.line) - 1
	m.line[0] = m.line[n]
	m.line[n] = nil
	m.line = m.line[:n]
	for i := 0; ; {
		l, r, small := 2*i+1, 2*i+2, i
		if l < n && m.less(l, small) {
			small = l
		}
		if r < n && m.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		m.line[i], m.line[small] = m.line[small], m.line[i]
		i = small
	}
	return top
}
