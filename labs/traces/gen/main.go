// Command gen writes the sample Mahimahi traces netlab ships in labs/traces
// (one millisecond a line at which one 1500-byte packet may leave the link;
// the trace repeats after its last line):
//
//   - steady-12mbit.trace: one packet a millisecond, 12 Mb/s;
//   - stepped.trace: 2 s each at 2, 6, 12, 24, 12 and 6 Mb/s;
//   - cellular-down.trace, cellular-up.trace: 30 s of a synthetic LTE link,
//     its capacity a random walk on a log scale, every 100 ms, drawn back
//     toward 12 Mb/s down (3 up) and kept within 1-40 Mb/s (0.5-10 up),
//     with a few outages of 200-600 ms, packets delivered in bursts as a
//     cell's scheduler does (a Poisson number of them each millisecond).
//
// The output is deterministic (fixed seeds): `go run ./labs/traces/gen
// labs/traces` writes the files again, and gen's test checks that the
// shipped ones are what it writes.
package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Traces are the sample traces, by file name.
func Traces() map[string][]uint32 {
	return map[string][]uint32{
		"steady-12mbit.trace": steady(12, 1000),
		"stepped.trace":       stepped([]float64{2, 6, 12, 24, 12, 6}, 2000),
		"cellular-down.trace": cellular(1, 1, 12, 40, 30000),
		"cellular-up.trace":   cellular(2, 0.5, 3, 10, 30000),
	}
}

// mbitPerOpp is what one opportunity a millisecond carries: 1500 bytes.
const mbitPerOpp = 1500 * 8 * 1000 / 1e6

// steady is a constant rate for ms milliseconds.
func steady(mbit float64, ms int) []uint32 {
	var out []uint32
	acc := 0.0
	for t := 1; t <= ms; t++ {
		acc += mbit / mbitPerOpp
		for ; acc >= 1; acc-- {
			out = append(out, uint32(t))
		}
	}
	return out
}

// stepped is each rate for step milliseconds, one after the other; a
// millisecond's share of a packet carries over (opportunities spread
// evenly).
func stepped(rates []float64, step int) []uint32 {
	var out []uint32
	acc := 0.0
	for i, r := range rates {
		for t := 1; t <= step; t++ {
			acc += r / mbitPerOpp
			for ; acc >= 1; acc-- {
				out = append(out, uint32(i*step+t))
			}
		}
	}
	return end(out, len(rates)*step)
}

// cellular is a synthetic cellular link of ms milliseconds around mid Mb/s,
// between lo and hi (an Ornstein-Uhlenbeck walk of the log of the rate).
func cellular(seed uint64, lo, mid, hi float64, ms int) []uint32 {
	rng := rand.New(rand.NewPCG(seed, 0x6e65746c6162))
	logLo, logMid, logHi := math.Log(lo), math.Log(mid), math.Log(hi)
	level := logMid
	outage := 0
	var out []uint32
	rate := 0.0
	for t := 1; t <= ms; t++ {
		if (t-1)%100 == 0 {
			level += 0.1*(logMid-level) + rng.NormFloat64()*0.2
			level = math.Max(logLo, math.Min(logHi, level))
			rate = math.Exp(level)
			if outage == 0 && rng.Float64() < 0.01 {
				outage = 200 + rng.IntN(401)
			}
		}
		if outage > 0 {
			outage--
			continue
		}
		for range poisson(rng, rate/mbitPerOpp) {
			out = append(out, uint32(t))
		}
	}
	return end(out, ms)
}

// end makes the trace last ms milliseconds: its last entry is the period.
func end(out []uint32, ms int) []uint32 {
	if len(out) == 0 || out[len(out)-1] != uint32(ms) {
		out = append(out, uint32(ms))
	}
	return out
}

// poisson draws a Poisson number of mean m (Knuth's method: m is small).
func poisson(rng *rand.Rand, m float64) int {
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// Text is a trace as its file holds it.
func Text(ms []uint32) string {
	var b strings.Builder
	for _, v := range ms {
		b.WriteString(strconv.FormatUint(uint64(v), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen DIR   (writes the sample traces into DIR)")
		os.Exit(2)
	}
	for name, ms := range Traces() {
		if err := os.WriteFile(filepath.Join(os.Args[1], name), []byte(Text(ms)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
