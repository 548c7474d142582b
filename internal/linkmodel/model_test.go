package linkmodel

import (
	"math"
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

// out is a frame as it left the model: its number and when.
type out struct {
	n int
	t time.Duration
}

// sim drives a model with a fake clock: frames pushed at given times, Pop
// called exactly when the model says it is due (as the emulator's timer
// does), and every departure recorded.
type sim struct {
	t    *testing.T
	m    *Model[int]
	now  time.Duration
	outs []out
}

func newSim(t *testing.T, p Params) *sim {
	t.Helper()
	m, err := New[int](p, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, m: m}
}

// advance runs the clock to t, popping at every due time on the way.
func (s *sim) advance(t time.Duration) {
	for {
		due, ok := s.m.Due()
		if !ok || due > t {
			break
		}
		if due < s.now {
			s.t.Fatalf("due %v is before now %v", due, s.now)
		}
		s.now = due
		s.m.Pop(s.now, func(n int, due time.Duration) {
			if due > s.now {
				s.t.Fatalf("frame %d due at %v handed out at %v", n, due, s.now)
			}
			s.outs = append(s.outs, out{n, s.now})
		})
	}
	s.now = t
}

// push offers frame n of size bytes at time t (after advancing to it).
func (s *sim) push(t time.Duration, n, size int) bool {
	s.advance(t)
	f := s.m.Decide(size, size)
	if f.Drop {
		return false
	}
	ok := s.m.Push(t, size, n)
	for range f.Copies - 1 {
		s.m.Push(t, size, n)
	}
	// A frame due at once goes at once, as the emulator's reader sends it.
	s.advance(t)
	return ok
}

func TestPassThrough(t *testing.T) {
	s := newSim(t, Params{})
	for i := range 5 {
		s.push(time.Duration(i)*ms, i, 100)
	}
	want := []out{{0, 0}, {1, ms}, {2, 2 * ms}, {3, 3 * ms}, {4, 4 * ms}}
	if !slices.Equal(s.outs, want) {
		t.Errorf("got %v, want %v", s.outs, want)
	}
	if st := s.m.Stats(); st.In != 5 || st.Out != 5 || st.InBytes != 500 || st.OutBytes != 500 || st.Queued+st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDelay(t *testing.T) {
	s := newSim(t, Params{Delay: 20 * ms})
	for i := range 10 {
		s.push(time.Duration(i)*ms, i, 1500)
	}
	if len(s.outs) != 0 {
		t.Fatalf("left before their delay: %v", s.outs)
	}
	if d, _ := s.m.Due(); d != 20*ms {
		t.Errorf("first due at %v, want 20ms", d)
	}
	s.advance(time.Second)
	for i, o := range s.outs {
		if o.n != i || o.t != time.Duration(i)*ms+20*ms {
			t.Errorf("frame %d: %+v, want left at %v", i, o, time.Duration(i)*ms+20*ms)
		}
	}
	if len(s.outs) != 10 {
		t.Errorf("%d frames out, want 10", len(s.outs))
	}
}

// Jitter of each distribution: over frames far apart (so the no-reordering
// rule never holds one back), the delay's mean is the setting and its
// standard deviation the jitter times the distribution's factor, within 2 %.
func TestJitterDistributions(t *testing.T) {
	for _, d := range []Distribution{Uniform, Normal, Pareto, ParetoNormal} {
		t.Run(string(d), func(t *testing.T) {
			const n = 100000
			s := newSim(t, Params{Delay: 100 * ms, Jitter: 10 * ms, Distribution: d})
			for i := range n {
				s.push(time.Duration(i)*time.Second, i, 100)
			}
			s.advance(time.Duration(n+1) * time.Second)
			var sum, sq float64
			for i, o := range s.outs {
				if o.n != i {
					t.Fatalf("frame %d left as %d: reordered", i, o.n)
				}
				v := float64(o.t-time.Duration(i)*time.Second) / float64(ms)
				if v < 0 {
					t.Fatalf("frame %d delayed %v ms", i, v)
				}
				sum += v
				sq += v * v
			}
			mean := sum / n
			sd := math.Sqrt(sq/n - mean*mean)
			wantSD := 10 * StdDevFactor(d)
			t.Logf("%s: mean %.3f ms, stddev %.3f ms (want %.3f)", d, mean, sd, wantSD)
			if math.Abs(sd-wantSD) > 0.02*wantSD {
				t.Errorf("stddev %.3f ms, want %.3f ± 2 %%", sd, wantSD)
			}
			// Uniform and normal are centred on the delay; netem's Pareto
			// tables are centred near it (their mean is not 0 after
			// clipping).
			if (d == Uniform || d == Normal) && math.Abs(mean-100) > 0.1 {
				t.Errorf("mean %.3f ms, want 100", mean)
			}
		})
	}
}

// Jitter never reorders unless asked: frames 1 ms apart with ±10 ms of
// jitter leave in order, each no earlier than the one before.
func TestJitterKeepsOrder(t *testing.T) {
	s := newSim(t, Params{Delay: 20 * ms, Jitter: 10 * ms, Distribution: Normal})
	for i := range 2000 {
		s.push(time.Duration(i)*ms, i, 100)
	}
	s.advance(10 * time.Second)
	for i, o := range s.outs {
		if o.n != i {
			t.Fatalf("frame %d left as %d", i, o.n)
		}
		if i > 0 && o.t < s.outs[i-1].t {
			t.Fatalf("frame %d left before frame %d", i, i-1)
		}
	}
}

// Reorder: the share asked leaves at once, overtaking delayed frames.
func TestReorder(t *testing.T) {
	s := newSim(t, Params{Delay: 10 * ms, Reorder: 25})
	const n = 20000
	for i := range n {
		s.push(time.Duration(i)*ms, i, 100)
	}
	s.advance(time.Duration(n+100) * ms)
	early, overtakes := 0, 0
	for i, o := range s.outs {
		if o.t == time.Duration(o.n)*ms {
			early++
		}
		if i > 0 && o.n < s.outs[i-1].n {
			overtakes++
		}
	}
	share := float64(early) / n * 100
	if math.Abs(share-25) > 1 || s.m.Stats().Reordered != uint64(early) {
		t.Errorf("%.2f %% sent at once (stats %d), want 25", share, s.m.Stats().Reordered)
	}
	if overtakes == 0 {
		t.Error("no frame overtook another")
	}
}

// Rate: a backlog leaves at the rate after the bucket's burst; the bytes
// out over time match the rate exactly.
func TestRate(t *testing.T) {
	p := Params{Rate: 10e6, Limit: 10000}
	s := newSim(t, p)
	const n, size = 1000, 1500
	for i := range n {
		s.push(0, i, size)
	}
	s.advance(10 * time.Second)
	if len(s.outs) != n {
		t.Fatalf("%d out, want %d", len(s.outs), n)
	}
	burst := p.burst()
	want := time.Duration((float64(n*size) - burst) / (10e6 / 8) * 1e9)
	last := s.outs[n-1].t
	if d := last - want; d < -2*ms || d > 2*ms {
		t.Errorf("last frame left at %v, want %v", last, want)
	}
	// In steady state frames are 1.2 ms apart.
	gap := s.outs[n-1].t - s.outs[n-2].t
	if gap != 1200*time.Microsecond {
		t.Errorf("gap %v, want 1.2ms", gap)
	}
	for i, o := range s.outs {
		if o.n != i {
			t.Fatalf("frame %d left as %d", i, o.n)
		}
	}
}

// Rate at less than its capacity: frames pass at once.
func TestRateUnderCapacity(t *testing.T) {
	s := newSim(t, Params{Rate: 100e6})
	for i := range 100 {
		s.push(time.Duration(i)*ms, i, 1500)
	}
	for i, o := range s.outs {
		if o.t != time.Duration(i)*ms {
			t.Fatalf("frame %d left at %v, want at once", i, o.t)
		}
	}
}

// A full queue drops at its tail, in frames and in bytes.
func TestTailDrop(t *testing.T) {
	for _, p := range []Params{{Rate: 1e6, Limit: 10}, {Rate: 1e6, LimitBytes: 15000, Burst: 1500}} {
		s := newSim(t, p)
		kept := 0
		for i := range 30 {
			if s.push(0, i, 1500) {
				kept++
			}
		}
		s.advance(time.Minute)
		st := s.m.Stats()
		if st.Dropped == 0 || uint64(len(s.outs)) != 30-st.Dropped || kept != len(s.outs) {
			t.Errorf("%+v: kept %d, out %d, stats %+v", p, kept, len(s.outs), st)
		}
		for i, o := range s.outs {
			if o.n != i {
				t.Errorf("%+v: frame %d out as %d: not the tail dropped", p, i, o.n)
				break
			}
		}
	}
}

// Without a rate, limit bounds the delay line (netem's limit).
func TestLimitOnDelayLine(t *testing.T) {
	s := newSim(t, Params{Delay: 100 * ms, Limit: 5})
	for i := range 10 {
		s.push(time.Duration(i)*ms, i, 100)
	}
	if st := s.m.Stats(); st.Dropped != 5 || st.InFlight != 5 {
		t.Errorf("stats %+v, want 5 dropped, 5 in flight", st)
	}
}

func TestMaxBytes(t *testing.T) {
	s := newSim(t, Params{Delay: time.Second})
	n := MaxBytes/65000 + 10
	for i := range n {
		s.push(0, i, 65000)
	}
	if st := s.m.Stats(); st.Overflow != 10 || st.QueuedBytes > MaxBytes {
		t.Errorf("stats %+v", st)
	}
}

func TestRandomLoss(t *testing.T) {
	s := newSim(t, Params{Loss: 20})
	const n = 100000
	for i := range n {
		s.push(time.Duration(i)*time.Microsecond, i, 100)
	}
	lost := float64(n-len(s.outs)) / n * 100
	if math.Abs(lost-20) > 0.5 || s.m.Stats().Lost != uint64(n-len(s.outs)) {
		t.Errorf("lost %.2f %%, want 20", lost)
	}
}

// Gilbert-Elliott over four million frames: the loss rate and the mean
// burst length are the chain's, within 3 % (bad states are rare: about
// 20,000 of them, whose lengths vary).
func TestGilbertElliott(t *testing.T) {
	for _, g := range []GilbertElliott{
		{P: 1, R: 25, LossBad: 100},                // simple Gilbert: bursts of 1/r = 4
		{P: 0.5, R: 10, LossBad: 80, LossGood: 1},  // Gilbert-Elliott
		{P: 5, R: 50, LossBad: 100, LossGood: 0.1}, // short bursts, often
	} {
		m, err := New[int](Params{GE: g}, 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		const n = 4000000
		lost, runs := 0, 0
		prev := false
		for range n {
			l := m.Decide(100, 0).Drop
			if l {
				lost++
				if !prev {
					runs++
				}
			}
			prev = l
		}
		rate, burst := float64(lost)/n, float64(lost)/float64(runs)
		t.Logf("%+v: loss %.4f (model %.4f), mean burst %.3f (model %.3f)", g, rate, g.LossRate(), burst, g.MeanBurst())
		if math.Abs(rate-g.LossRate()) > 0.03*g.LossRate() {
			t.Errorf("%+v: loss rate %.4f, model %.4f", g, rate, g.LossRate())
		}
		if math.Abs(burst-g.MeanBurst()) > 0.03*g.MeanBurst() {
			t.Errorf("%+v: mean burst %.3f, model %.3f", g, burst, g.MeanBurst())
		}
	}
	if b := (GilbertElliott{P: 1, R: 25, LossBad: 100}).MeanBurst(); math.Abs(b-4) > 1e-9 {
		t.Errorf("simple Gilbert mean burst %v, want 1/r = 4", b)
	}
}

func TestDuplicateCorrupt(t *testing.T) {
	s := newSim(t, Params{Duplicate: 10, Corrupt: 5})
	const n = 50000
	for i := range n {
		s.push(time.Duration(i)*time.Microsecond, i, 100)
	}
	st := s.m.Stats()
	if d := float64(st.Duplicated) / n * 100; math.Abs(d-10) > 0.5 || len(s.outs) != n+int(st.Duplicated) {
		t.Errorf("duplicated %.2f %%, %d out of %d", d, len(s.outs), n)
	}
	if c := float64(st.Corrupted) / n * 100; math.Abs(c-5) > 0.4 {
		t.Errorf("corrupted %.2f %%", c)
	}
	m, _ := New[int](Params{Corrupt: 100}, 3, 0)
	for range 1000 {
		if f := m.Decide(100, 20); f.CorruptBit < 0 || f.CorruptBit >= 160 {
			t.Fatalf("corrupt bit %d outside the region of 20 bytes", f.CorruptBit)
		}
		if f := m.Decide(100, 0); f.CorruptBit != -1 {
			t.Fatalf("corrupt bit %d with no region", f.CorruptBit)
		}
	}
}

// A trace: each opportunity delivers 1500 bytes, a frame larger than that
// over several, smaller ones several to one; the trace repeats with the
// period of its last entry (whose entry and the next loop's first, both at
// the same time, are two opportunities).
func TestTrace(t *testing.T) {
	tr := &Trace{Name: "t", Sum: "1", MS: []uint32{0, 5, 5, 10}}
	s := newSim(t, Params{Trace: tr})
	for i := range 6 {
		s.push(0, i, 1500)
	}
	s.advance(time.Second)
	want := []time.Duration{0, 5 * ms, 5 * ms, 10 * ms, 10 * ms, 15 * ms}
	for i, o := range s.outs {
		if o.n != i || o.t != want[i] {
			t.Errorf("frame %d left at %v as %d, want %v", i, o.t, o.n, want[i])
		}
	}
	// Partial delivery: 3000 bytes need two opportunities; 500-byte frames
	// go three to one.
	s = newSim(t, Params{Trace: &Trace{Sum: "2", MS: []uint32{1}}})
	s.push(0, 0, 3000)
	for i := 1; i <= 3; i++ {
		s.push(0, i, 500)
	}
	s.advance(time.Second)
	wantOut := []out{{0, 2 * ms}, {1, 3 * ms}, {2, 3 * ms}, {3, 3 * ms}}
	if !slices.Equal(s.outs, wantOut) {
		t.Errorf("got %v, want %v", s.outs, wantOut)
	}
	// Unused opportunities are lost: a frame arriving after a quiet second
	// waits for the next one, not for the backlog of those missed.
	s.push(1500*ms+100*time.Microsecond, 9, 1500)
	s.advance(2 * time.Second)
	if last := s.outs[len(s.outs)-1]; last != (out{9, 1501 * ms}) {
		t.Errorf("after a quiet second: %v, want frame 9 at 1.501s", last)
	}
}

// A saturated trace delivers, in every window, what the trace offers then.
func TestTraceCapacityPerWindow(t *testing.T) {
	// 4 opportunities a millisecond for 100 ms, then 1 for 100 ms.
	var msList []uint32
	for i := uint32(1); i <= 200; i++ {
		n := 1
		if i <= 100 {
			n = 4
		}
		for range n {
			msList = append(msList, i)
		}
	}
	tr := &Trace{Sum: "w", MS: msList}
	s := newSim(t, Params{Trace: tr, Limit: 100000})
	const size = 1500
	for i := range 20000 {
		s.push(time.Duration(i)*20*time.Microsecond, i, size) // 600 Mb/s offered
	}
	s.advance(time.Second)
	window := map[int]int{}
	for _, o := range s.outs {
		window[int((o.t-ms)/(100*ms))] += size // entries 1..100 are the first window
	}
	for w := 0; w < 4; w++ {
		opps := 400
		if w%2 == 1 {
			opps = 100
		}
		if window[w] != opps*size {
			t.Errorf("window %d delivered %d bytes, the trace offers %d", w, window[w], opps*size)
		}
	}
}

// SetParams keeps what is queued: a backlog at 1 Mb/s sped up to 100 Mb/s
// loses nothing and leaves in order; frames on the delay line keep their
// departure when the delay changes.
func TestSetParamsKeepsQueue(t *testing.T) {
	s := newSim(t, Params{Rate: 1e6, Limit: 1000})
	for i := range 200 {
		s.push(0, i, 1500)
	}
	s.advance(100 * ms)
	before := len(s.outs)
	if err := s.m.SetParams(Params{Rate: 100e6, Limit: 10}, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second)
	if len(s.outs) != 200 || s.m.Stats().Dropped != 0 {
		t.Fatalf("%d of 200 out (%d before the change), stats %+v", len(s.outs), before, s.m.Stats())
	}
	for i, o := range s.outs {
		if o.n != i {
			t.Fatalf("frame %d out as %d", i, o.n)
		}
	}
	if end := s.outs[199].t; end > 200*ms {
		t.Errorf("the backlog drained at %v: the new rate did not apply", end)
	}

	s = newSim(t, Params{Delay: 100 * ms})
	s.push(0, 0, 100)
	s.m.SetParams(Params{Delay: 10 * ms}, 1*ms)
	s.push(2*ms, 1, 100)
	s.advance(time.Second)
	want := []out{{0, 100 * ms}, {1, 100 * ms}} // no reordering: 1 waits for 0
	if !slices.Equal(s.outs, want) {
		t.Errorf("got %v, want %v", s.outs, want)
	}
	// Dropping the rate lets the queue go at once.
	s = newSim(t, Params{Rate: 1e6, Limit: 100})
	for i := range 50 {
		s.push(0, i, 1500)
	}
	s.m.SetParams(Params{}, 10*ms)
	s.advance(10 * ms)
	if len(s.outs) != 50 {
		t.Errorf("%d out after the rate was lifted, want 50", len(s.outs))
	}
}

// A trace that stays keeps its place when other parameters change.
func TestSetParamsKeepsTrace(t *testing.T) {
	tr := &Trace{Sum: "k", MS: []uint32{10}}
	s := newSim(t, Params{Trace: tr})
	s.push(0, 0, 1500)
	s.m.SetParams(Params{Trace: tr, Delay: ms}, 5*ms)
	s.advance(time.Second)
	if !slices.Equal(s.outs, []out{{0, 11 * ms}}) {
		t.Errorf("got %v, want frame 0 at 11ms", s.outs)
	}
}

func TestCheck(t *testing.T) {
	for _, p := range []Params{
		{Loss: 101}, {Delay: -1}, {Distribution: "zipf"}, {Trace: &Trace{}},
		{Trace: &Trace{MS: []uint32{5, 3}}}, {Trace: &Trace{MS: []uint32{0}}},
		{Trace: &Trace{MS: []uint32{1}}, Rate: 1e6}, {GE: GilbertElliott{P: -1}},
	} {
		if err := p.Check(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
	if _, err := New[int](Params{Loss: 200}, 1, 0); err == nil {
		t.Error("New took a loss of 200 %")
	}
}

func TestPerPacket(t *testing.T) {
	if (&Params{Delay: ms, Jitter: ms}).PerPacket() {
		t.Error("delay and jitter are not per packet")
	}
	for _, p := range []Params{{Rate: 1}, {Loss: 1}, {GE: GilbertElliott{P: 1}}, {Duplicate: 1}, {Corrupt: 1}, {Reorder: 1}, {Limit: 1}, {Trace: &Trace{}}} {
		if !p.PerPacket() {
			t.Errorf("%+v is per packet", p)
		}
	}
}

// A time earlier than one given before is taken as that one: a caller
// popping a little ahead of its clock never moves the model back.
func TestTimeNeverGoesBack(t *testing.T) {
	m, _ := New[int](Params{Delay: 10 * ms}, 1, 0)
	var got []out
	m.Pop(5*ms, func(n int, due time.Duration) { got = append(got, out{n, due}) })
	m.Push(4*ms, 100, 1) // arrived "before" the pop: taken at 5 ms
	m.Pop(20*ms, func(n int, due time.Duration) { got = append(got, out{n, due}) })
	if !slices.Equal(got, []out{{1, 15 * ms}}) {
		t.Errorf("got %v, want frame 1 due at 15ms", got)
	}
}
