// Package linkmodel is the model of one direction of an emulated link: what
// happens to each frame between the moment it is sent into the link and the
// moment it comes out at the far end. It is pure: time is given to it (a
// duration since the model's epoch), randomness comes from a seeded source,
// and packets are opaque values of the caller's type, so every behaviour is
// reproducible in a test with a fake clock.
//
// A frame goes through three stages, as on a real path and as netem and
// Mahimahi order them:
//
//  1. Decide, on arrival: lost (at random, or by a Gilbert-Elliott chain of
//     good and bad states), duplicated, corrupted (one bit flipped).
//  2. The link's queue (Push): a token bucket of the rate, or the delivery
//     opportunities of a Mahimahi trace, serves it in order; a full queue
//     drops at its tail.
//  3. The delay line: a fixed delay plus jitter drawn from a distribution
//     (uniform, normal, pareto, paretonormal, as netem's tables), never
//     reordering unless asked; a reordered frame skips the delay.
//
// Parameters change in place (SetParams) without dropping what is queued:
// frames on the delay line keep the time they were given, frames waiting
// for the link are served at the new rate.
package linkmodel

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Distribution is the shape of the jitter, as netem's tables: Uniform
// (netem's own when it is given no table), Normal, Pareto, ParetoNormal.
type Distribution string

const (
	Uniform      Distribution = ""
	Normal       Distribution = "normal"
	Pareto       Distribution = "pareto"
	ParetoNormal Distribution = "paretonormal"
)

// Params is what one direction of a link does to the frames it carries.
// Percentages are 0..100. Sizes are counted at the IP layer (a frame less
// its Ethernet header), as Mahimahi counts them.
type Params struct {
	Delay        time.Duration `json:"delay,omitempty"`
	Jitter       time.Duration `json:"jitter,omitempty"`
	Distribution Distribution  `json:"distribution,omitempty"`
	// Rate is the link's capacity in bits per second (a token bucket of
	// Burst bytes); 0: unlimited.
	Rate  uint64 `json:"rate,omitempty"`
	Burst int    `json:"burst,omitempty"`
	// Trace replaces Rate with the delivery opportunities of a Mahimahi
	// trace; nil: none.
	Trace *Trace `json:"trace,omitempty"`
	// Limit and LimitBytes bound the frames waiting for the link (with a
	// Rate or a Trace) or on the delay line (without); 0: the default.
	Limit      int `json:"limit,omitempty"`
	LimitBytes int `json:"limit_bytes,omitempty"`

	Loss      float64        `json:"loss,omitempty"`
	GE        GilbertElliott `json:"gilbert_elliott,omitzero"`
	Duplicate float64        `json:"duplicate,omitempty"`
	Corrupt   float64        `json:"corrupt,omitempty"`
	Reorder   float64        `json:"reorder,omitempty"`
}

// GilbertElliott is the two-state loss model of netem's `loss gemodel p r
// 1-h 1-k`: from the good state a frame moves the chain to the bad state
// with probability P, from the bad state back with R; a frame is lost with
// probability LossBad in the bad state (1-h) and LossGood in the good one
// (1-k). All are percentages. The zero value is no such model.
type GilbertElliott struct {
	P        float64 `json:"p"`
	R        float64 `json:"r"`
	LossBad  float64 `json:"loss_bad"`
	LossGood float64 `json:"loss_good"`
}

// IsZero says whether the model is unset.
func (g GilbertElliott) IsZero() bool { return g == GilbertElliott{} }

// LossRate is the share of frames the chain loses in the long run, 0..1.
func (g GilbertElliott) LossRate() float64 {
	p, r := g.P/100, g.R/100
	if p+r == 0 {
		return g.LossGood / 100 // never leaves the good state
	}
	bad := p / (p + r)
	return bad*g.LossBad/100 + (1-bad)*g.LossGood/100
}

// MeanBurst is the mean length of a run of consecutive lost frames in the
// long run: the frames lost divided by the runs they form, a run starting
// where a kept frame is followed by a lost one. With LossBad 100 % and
// LossGood 0 it is 1/R, the mean stay in the bad state.
func (g GilbertElliott) MeanBurst() float64 {
	p, r := g.P/100, g.R/100
	lb, lg := g.LossBad/100, g.LossGood/100
	if p+r == 0 {
		if lg >= 1 {
			return math.Inf(1)
		}
		return 1 / (1 - lg)
	}
	pb := p / (p + r)
	pg := 1 - pb
	loss := pb*lb + pg*lg
	// A frame kept in state s, the next in state s' (the chain moves
	// between frames), lost there.
	starts := pg*(1-lg)*((1-p)*lg+p*lb) + pb*(1-lb)*(r*lg+(1-r)*lb)
	if starts == 0 {
		return math.Inf(1)
	}
	return loss / starts
}

// Trace is a Mahimahi packet-delivery trace: each entry a millisecond, from
// the trace's start, at which one MTU-sized packet may leave; an entry
// repeated is as many packets. The trace repeats with the period of its last
// entry.
type Trace struct {
	// Name and Sum say which trace this is (as the file names it, and a
	// hash of its content); MS are its entries, ascending.
	Name string   `json:"name,omitempty"`
	Sum  string   `json:"sum,omitempty"`
	MS   []uint32 `json:"ms,omitempty"`
}

// Period is the trace's length: it repeats after its last entry.
func (t *Trace) Period() time.Duration {
	return time.Duration(t.MS[len(t.MS)-1]) * time.Millisecond
}

// Rate is the trace's mean capacity in bits per second, with opp bytes per
// delivery opportunity.
func (t *Trace) Rate(opp int) float64 {
	return float64(len(t.MS)) * float64(opp) * 8 / t.Period().Seconds()
}

// Check says what is wrong with a trace: no entries, entries that go back in
// time, or a last entry of 0 (a trace must last a millisecond at least).
func (t *Trace) Check() error {
	if len(t.MS) == 0 {
		return errors.New("a trace needs at least one entry")
	}
	for i := 1; i < len(t.MS); i++ {
		if t.MS[i] < t.MS[i-1] {
			return fmt.Errorf("entry %d (%d ms) is before the one above it (%d ms): a trace goes forward in time", i+1, t.MS[i], t.MS[i-1])
		}
	}
	if t.MS[len(t.MS)-1] == 0 {
		return errors.New("the last entry is 0 ms: a trace repeats with the period of its last entry, which must be at least 1 ms")
	}
	return nil
}

// Defaults of the queue and the bucket. The bucket holds 10 ms of the rate
// but at least 16 KiB, as netlab's tbf: a frame larger than the bucket
// would wait for ever (a GSO frame of 64 KiB is still served, the bucket
// going into debt). With a rate the queue holds 50 ms of it beyond the
// bucket (tbf's usual latency); with a trace DefaultLimit frames (netem's
// default queue); on the delay line alone only MaxBytes bounds it: a delay
// line is the wire, and a limit in frames there caps throughput at
// limit/delay, the well-known trap of netem's.
const (
	minBurst        = 16 << 10
	rateQueueMS     = 50
	DefaultLimit    = 1000
	DefaultOppBytes = 1500
	// MaxBytes bounds the bytes one direction holds at once (queue and
	// delay line): beyond it frames are dropped as overflow. 64 MiB is
	// 200 ms of 2.6 Gb/s.
	MaxBytes = 64 << 20
)

// burst is the bucket's size in bytes.
func (p *Params) burst() float64 {
	if p.Burst > 0 {
		return float64(p.Burst)
	}
	return math.Max(float64(p.Rate)/8/100, minBurst)
}

// limits are the queue's bounds in frames and bytes (0: none).
func (p *Params) limits() (frames, bytes int) {
	if p.Limit > 0 || p.LimitBytes > 0 {
		return p.Limit, p.LimitBytes
	}
	switch {
	case p.Trace != nil:
		return DefaultLimit, 0
	case p.Rate > 0:
		return 0, int(float64(p.Rate)/8*rateQueueMS/1000 + p.burst())
	}
	return 0, 0
}

// Check says what is wrong with the parameters, if anything.
func (p *Params) Check() error {
	var errs []error
	pct := func(name string, v float64) {
		if v < 0 || v > 100 || math.IsNaN(v) {
			errs = append(errs, fmt.Errorf("%s %v%% is not in 0..100", name, v))
		}
	}
	pct("loss", p.Loss)
	pct("duplicate", p.Duplicate)
	pct("corrupt", p.Corrupt)
	pct("reorder", p.Reorder)
	pct("gilbert-elliott p", p.GE.P)
	pct("gilbert-elliott r", p.GE.R)
	pct("gilbert-elliott loss-bad", p.GE.LossBad)
	pct("gilbert-elliott loss-good", p.GE.LossGood)
	if p.Delay < 0 || p.Jitter < 0 {
		errs = append(errs, errors.New("delay and jitter cannot be negative"))
	}
	if p.Limit < 0 || p.LimitBytes < 0 || p.Burst < 0 {
		errs = append(errs, errors.New("limits and burst cannot be negative"))
	}
	switch p.Distribution {
	case Uniform, Normal, Pareto, ParetoNormal:
	default:
		errs = append(errs, fmt.Errorf("unknown distribution %q (uniform, normal, pareto, paretonormal)", p.Distribution))
	}
	if p.Trace != nil {
		if err := p.Trace.Check(); err != nil {
			errs = append(errs, fmt.Errorf("trace %s: %w", p.Trace.Name, err))
		}
		if p.Rate != 0 {
			errs = append(errs, errors.New("a trace and a rate both set the link's capacity: give one"))
		}
	}
	return errors.Join(errs...)
}

// PerPacket says whether the parameters act on each frame on its own (loss,
// rate, a trace, a queue limit, duplication, corruption, reordering), so a
// GSO super-frame of many segments must be cut into them first; delay and
// jitter alone treat a super-frame as one, as netem does.
func (p *Params) PerPacket() bool {
	return p.Rate != 0 || p.Trace != nil || p.Limit != 0 || p.LimitBytes != 0 || p.Loss != 0 || !p.GE.IsZero() ||
		p.Duplicate != 0 || p.Corrupt != 0 || p.Reorder != 0
}
