package linkmodel

import (
	"math"
	"math/rand/v2"
	"time"
)

// String names the distribution as the file writes it.
func (d Distribution) String() string {
	if d == Uniform {
		return "uniform"
	}
	return string(d)
}

// netem's tables hold a variate scaled by NETEM_DIST_SCALE (8192) in a
// signed 16-bit entry, so no variate goes beyond ±4 (32767/8192).
const distClip = 32767.0 / 8192

// paretoShape is the shape of the Pareto tables iproute2 generates
// (netem/pareto.c, from NIST Net): a = 3, mean 1.5, shifted to mean 0 and
// scaled by 4/3.
const paretoShape = 3.0

// variate draws X of the distribution, so that a delay is delay + jitter*X:
// uniform on [-1, 1) (netem without a table: mu - sigma + rnd % 2sigma);
// normal N(0, 1); pareto and paretonormal as iproute2's tables have them,
// the latter the quantile (normal + 3 pareto)/4 at the same probability,
// as netem/paretonormal.c combines its two tables. All are clipped at ±4 as
// the tables are.
func variate(d Distribution, rng *rand.Rand) float64 {
	var x float64
	switch d {
	case Normal:
		x = rng.NormFloat64()
	case Pareto:
		x = paretoQuantile(rng.Float64())
	case ParetoNormal:
		u := rng.Float64()
		x = (normalQuantile(u) + 3*paretoQuantile(u)) / 4
	default:
		return 2*rng.Float64() - 1
	}
	return math.Max(-distClip, math.Min(distClip, x))
}

// paretoQuantile is the Pareto variate of iproute2's table at probability
// u: ((1-u)^(-1/a) - 1.5) * 4/3.
func paretoQuantile(u float64) float64 {
	return (math.Pow(1-u, -1/paretoShape) - 1.5) * 4 / 3
}

// normalQuantile is the standard normal variate at probability u.
func normalQuantile(u float64) float64 {
	u = math.Max(1e-12, math.Min(1-1e-12, u))
	return math.Sqrt2 * math.Erfinv(2*u-1)
}

// jittered is a delay with its jitter drawn, never below zero (netem
// clamps the same way).
func jittered(delay, jitter time.Duration, d Distribution, rng *rand.Rand) time.Duration {
	if jitter == 0 {
		return delay
	}
	v := time.Duration(float64(delay) + float64(jitter)*variate(d, rng))
	return max(v, 0)
}

// StdDevFactor is the standard deviation of the jitter's variate for the
// distribution: the delay's standard deviation is the jitter times this
// (1/sqrt(3) for uniform, 1 for normal). Computed from the quantiles, for
// the distributions with no closed form after clipping.
func StdDevFactor(d Distribution) float64 {
	switch d {
	case Uniform:
		return 1 / math.Sqrt(3)
	case Normal:
		return 1
	}
	const n = 200000
	var sum, sq float64
	for i := range n {
		u := (float64(i) + 0.5) / n
		var x float64
		if d == Pareto {
			x = paretoQuantile(u)
		} else {
			x = (normalQuantile(u) + 3*paretoQuantile(u)) / 4
		}
		x = math.Max(-distClip, math.Min(distClip, x))
		sum += x
		sq += x * x
	}
	mean := sum / n
	return math.Sqrt(sq/n - mean*mean)
}
