package linkmodel

import (
	"testing"
	"time"
)

// FuzzModel drives a model with a program of operations read from the
// input: frames pushed at times that only go forward, Pops at due times and
// at random ones, parameter changes while frames are queued. Whatever the
// program, every frame accepted leaves exactly once, never before it
// arrived; frames leave in the order they came unless reordering or jitter
// with reordering was asked; the counters add up; nothing panics.
func FuzzModel(f *testing.F) {
	f.Add([]byte{0, 10, 1, 200, 2, 3, 0, 50, 4, 1})
	f.Add([]byte{3, 7, 0, 1, 0, 2, 0, 3, 2, 9, 3, 2, 0, 200, 1, 1})
	f.Add([]byte{3, 5, 0, 255, 0, 255, 0, 255, 2, 1, 3, 6, 0, 1, 1, 2})
	f.Fuzz(func(t *testing.T, prog []byte) {
		params := []Params{
			{},
			{Delay: 5 * ms},
			{Delay: 20 * ms, Jitter: 10 * ms, Distribution: Normal},
			{Rate: 1e6, Limit: 20},
			{Rate: 50e6, LimitBytes: 30000, Delay: ms},
			{Trace: &Trace{Sum: "a", MS: []uint32{0, 1, 1, 3}}, Limit: 10},
			{Trace: &Trace{Sum: "b", MS: []uint32{2, 7}}, Delay: 2 * ms, Jitter: ms, Distribution: Pareto},
			{Loss: 30, Duplicate: 20, Corrupt: 10},
			{GE: GilbertElliott{P: 10, R: 30, LossBad: 90, LossGood: 1}, Delay: ms},
			{Delay: 10 * ms, Reorder: 30},
		}
		m, err := New[int](Params{}, 42, 0)
		if err != nil {
			t.Fatal(err)
		}
		var now time.Duration
		arrived := map[int]time.Duration{}
		seen := map[int]int{}
		copies := map[int]int{}
		reorders := false
		lastOut := -1
		emit := func(n int, due time.Duration) {
			if due > now {
				t.Fatalf("frame %d due at %v left at %v", n, due, now)
			}
			seen[n]++
			if seen[n] > copies[n] {
				t.Fatalf("frame %d left %d times, pushed %d", n, seen[n], copies[n])
			}
			if now < arrived[n] {
				t.Fatalf("frame %d left at %v, before it arrived at %v", n, now, arrived[n])
			}
			if !reorders && n < lastOut {
				t.Fatalf("frame %d left after frame %d without reordering", n, lastOut)
			}
			lastOut = max(lastOut, n)
		}
		next := 0
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i]%5, int(prog[i+1])
			switch op {
			case 0: // a frame now, of some size
				size := 40 + arg*37%9000
				fate := m.Decide(size, size)
				if fate.Drop {
					next++
					continue
				}
				for range fate.Copies {
					if m.Push(now, size, next) {
						copies[next]++
					}
				}
				arrived[next] = now
				next++
			case 1: // time passes
				now += time.Duration(arg) * 100 * time.Microsecond
				m.Pop(now, emit)
			case 2: // pop exactly when due, if soon
				if d, ok := m.Due(); ok && d < now+time.Second {
					if d > now {
						now = d
					}
					m.Pop(now, emit)
				}
			case 3: // new parameters
				p := params[arg%len(params)]
				if p.Reorder > 0 {
					reorders = true
				}
				if err := m.SetParams(p, now); err != nil {
					t.Fatal(err)
				}
			case 4: // pop at a time before the due time: nothing due leaves early
				m.Pop(now, emit)
			}
		}
		// Drain: everything accepted leaves in the end.
		for range 100000 {
			d, ok := m.Due()
			if !ok {
				break
			}
			now = max(now, d)
			m.Pop(now, emit)
		}
		st := m.Stats()
		if st.Queued != 0 || st.InFlight != 0 || st.QueuedBytes != 0 {
			t.Fatalf("left holding %+v", st)
		}
		for n, c := range copies {
			if seen[n] != c {
				t.Fatalf("frame %d pushed %d times, left %d", n, c, seen[n])
			}
		}
		var pushed uint64
		for _, c := range copies {
			pushed += uint64(c)
		}
		if st.Out != pushed {
			t.Fatalf("out %d, pushed %d", st.Out, pushed)
		}
		// Each frame in is lost, or pushed once (twice when duplicated),
		// and each push is kept or refused.
		if st.In-st.Lost+st.Duplicated != pushed+st.Dropped+st.Overflow {
			t.Fatalf("counters do not add up: %+v, pushed %d", st, pushed)
		}
	})
}
