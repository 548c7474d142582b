package topology

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Impair is what an interface's impair: block asks of the packets that
// leave the interface (its egress): a rate, a delay with jitter, and loss,
// duplication, corruption and reordering as percentages, with a queue limit.
// The zero value impairs nothing. Units are tc's (tc-tbf(8), tc-netem(8)).
type Impair struct {
	Rate      uint64        `json:"rate_bps,omitempty"` // bits per second; 0: unlimited
	Delay     time.Duration `json:"delay,omitempty"`
	Jitter    time.Duration `json:"jitter,omitempty"`
	Loss      float64       `json:"loss,omitempty"` // percent, 0..100
	Duplicate float64       `json:"duplicate,omitempty"`
	Corrupt   float64       `json:"corrupt,omitempty"`
	Reorder   float64       `json:"reorder,omitempty"`
	Limit     int           `json:"limit,omitempty"` // queue length in packets; 0: the default
}

// IsZero says whether the block impairs nothing.
func (i Impair) IsZero() bool { return i == Impair{} }

// NetemFields names the fields set in i that only the kernel's netem qdisc
// (sch_netem) can apply, in the order the format lists them. Rate is tbf's
// and loss is done without netem too (an nftables rule), so neither is here.
func (i Impair) NetemFields() []string {
	var out []string
	if i.Delay != 0 {
		out = append(out, "delay")
	}
	if i.Jitter != 0 {
		out = append(out, "jitter")
	}
	if i.Duplicate != 0 {
		out = append(out, "duplicate")
	}
	if i.Corrupt != 0 {
		out = append(out, "corrupt")
	}
	if i.Reorder != 0 {
		out = append(out, "reorder")
	}
	return out
}

// String renders the block as the file writes it: "rate 20mbit loss 20%".
func (i Impair) String() string {
	var parts []string
	if i.Rate != 0 {
		parts = append(parts, "rate "+FormatRate(i.Rate))
	}
	if i.Delay != 0 {
		parts = append(parts, "delay "+i.Delay.String())
	}
	if i.Jitter != 0 {
		parts = append(parts, "jitter "+i.Jitter.String())
	}
	pct := func(name string, v float64) {
		if v != 0 {
			parts = append(parts, name+" "+FormatPercent(v))
		}
	}
	pct("loss", i.Loss)
	pct("duplicate", i.Duplicate)
	pct("corrupt", i.Corrupt)
	pct("reorder", i.Reorder)
	if i.Limit != 0 {
		parts = append(parts, fmt.Sprintf("limit %d", i.Limit))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Impairment is the impair: block of one interface of the lab: either end
// of a veth (an interface entry, or a bridge's ports: entry for the bridge
// side), or a TAP.
type Impairment struct {
	NS   string // namespace of the interface, Host for host-side ones
	Link string
	Impair
	Pos  Pos    // of the impair key
	Path string // e.g. namespaces.blue.interfaces.veth1.impair
	// FieldPos is where each written field stands, for errors found on the
	// machine (a field this kernel cannot apply).
	FieldPos map[string]Pos
}

// FeatureError says the machine lacks a kernel feature the file needs (the
// netem qdisc for delay, say). It holds the file's places that need it.
// validate reports it as an invalid file would (exit 2); up, which was asked
// to act, fails with a runtime error (exit 1), having changed nothing.
type FeatureError struct {
	Feature string // e.g. "sch_netem (CONFIG_NET_SCH_NETEM)"
	Errs    ErrorList
}

func (e *FeatureError) Error() string {
	return fmt.Sprintf("this kernel has no %s:\n%s", e.Feature, e.Errs.Error())
}

// Unwrap gives the places, so errors.As finds each *Error.
func (e *FeatureError) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, x := range e.Errs {
		errs[i] = x
	}
	return errs
}

// rateUnits are tc's rate units (tc(8) "RATES"), in bits per second per unit.
var rateUnits = map[string]float64{
	"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
	"kibit": 1 << 10, "mibit": 1 << 20, "gibit": 1 << 30, "tibit": 1 << 40,
	"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
	"kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30, "tibps": 8 << 40,
}

// Limits of impairments.
const (
	MinRate     = 8           // bits per second: one byte a second
	MaxRate     = 8e12        // 1 TB/s, beyond any veth
	MaxDelay    = time.Minute // netem holds every packet that long in memory
	MaxQueueLen = 1 << 20     // packets
)

// ParseRate reads a tc rate: a number and a unit (20mbit, 1.5gbit, 100kbps;
// units case-insensitive, as tc takes them), in bits per second.
func ParseRate(s string) (uint64, string) {
	t := strings.ToLower(strings.TrimSpace(s))
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Sprintf("rate %s is negative", s)
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Sprintf("invalid rate %q: want a number and a unit, such as 20mbit (units: bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)", s)
	}
	unit, ok := rateUnits[t[i:]]
	if !ok {
		return 0, fmt.Sprintf("invalid rate %q: unknown unit %q (units: bit, kbit, mbit, gbit, tbit, bps, kbps, mbps, gbps, tbps, and kibit, mibit... for powers of two)", s, s[i:])
	}
	v, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Sprintf("invalid rate %q: want a number and a unit, such as 20mbit", s)
	}
	bps := v * unit
	if bps < MinRate || bps > MaxRate {
		return 0, fmt.Sprintf("rate %q is out of range 8bit..8tbit", s)
	}
	return uint64(math.Round(bps)), ""
}

// FormatRate renders bits per second the way tc prints a rate.
func FormatRate(bps uint64) string {
	for _, u := range []struct {
		name string
		div  uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bps >= u.div {
			if bps%u.div == 0 {
				return fmt.Sprintf("%d%s", bps/u.div, u.name)
			}
			if u.div > 1e3 && bps%(u.div/1e3) == 0 {
				return strconv.FormatFloat(float64(bps)/float64(u.div), 'f', -1, 64) + u.name
			}
		}
	}
	return fmt.Sprintf("%dbit", bps)
}

// FormatPercent renders a percentage: "20%", "0.5%".
func FormatPercent(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

// ParsePercent reads a percentage written "20%" (or a bare number, which is
// a percentage too), 0..100.
func ParsePercent(s string) (float64, string) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Sprintf("invalid percentage %q: want a number from 0 to 100, such as 20%%", s)
	}
	if v < 0 {
		return 0, fmt.Sprintf("%s is negative: a percentage is 0..100", s)
	}
	if v > 100 {
		return 0, fmt.Sprintf("%s is over 100%%", s)
	}
	return v, ""
}

// ParseDelay reads a duration as Go and tc write it (20ms, 1.5s, 500us),
// 0..MaxDelay.
func ParseDelay(s string) (time.Duration, string) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Sprintf("invalid duration %q: want a number and a unit, such as 20ms (units: us, ms, s)", s)
	}
	if d < 0 {
		return 0, fmt.Sprintf("%s is negative", s)
	}
	if d > MaxDelay {
		return 0, fmt.Sprintf("%s is longer than %s", s, MaxDelay)
	}
	return d, ""
}

// parseImpair reads an impair: block (section "impair") of the interface
// nsName/link. Every field is checked with its place; nil means an empty
// block or errors (already recorded).
func (p *parser) parseImpair(e entry, nsName, link string) *Impairment {
	im, bad := p.parseImpairBlock(e, nsName, link)
	if bad || im.IsZero() {
		return nil
	}
	return im
}

// parseImpairBlock reads an impair: block's fields, each checked with its
// place (FieldPos says which were written); bad says one was wrong.
func (p *parser) parseImpairBlock(e entry, nsName, link string) (*Impairment, bool) {
	im := &Impairment{NS: nsName, Link: link, Pos: pos(e.k), Path: e.path, FieldPos: map[string]Pos{}}
	f := p.fields(e.v, e.path, "impair")
	// scalar accepts a string or a number (percentages may be written 20 or
	// "20%"; rates and durations need their unit, which the parsers check).
	scalar := func(fe entry) (string, bool) {
		if fe.v.Kind != yaml.ScalarNode || (fe.v.ShortTag() != "!!str" && fe.v.ShortTag() != "!!int" && fe.v.ShortTag() != "!!float") {
			p.errorf(pos(fe.v), fe.path, "want a value such as 20mbit, 20ms or 20%%, got %s", describe(fe.v))
			return "", false
		}
		im.FieldPos[fe.key] = pos(fe.v)
		return fe.v.Value, true
	}
	bad := false
	fail := func(fe entry, msg string) {
		p.errorf(pos(fe.v), fe.path, "%s", msg)
		bad = true
	}
	// read hands the field key, when present and a scalar, to parse, which
	// keeps its value and says what is wrong with it.
	read := func(key string, parse func(string) string) {
		fe, ok := f[key]
		if !ok {
			return
		}
		s, good := scalar(fe)
		if !good {
			bad = true
			return
		}
		if msg := parse(s); msg != "" {
			fail(fe, msg)
		}
	}
	read("rate", func(s string) (msg string) { im.Rate, msg = ParseRate(s); return msg })
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"delay", &im.Delay}, {"jitter", &im.Jitter}} {
		read(d.key, func(s string) (msg string) { *d.to, msg = ParseDelay(s); return msg })
	}
	for _, c := range []struct {
		key string
		to  *float64
	}{{"loss", &im.Loss}, {"duplicate", &im.Duplicate}, {"corrupt", &im.Corrupt}, {"reorder", &im.Reorder}} {
		read(c.key, func(s string) (msg string) { *c.to, msg = ParsePercent(s); return msg })
	}
	if fe, ok := f["limit"]; ok {
		im.FieldPos["limit"] = pos(fe.v)
		v, good := p.integer(fe, 1, MaxQueueLen)
		bad = bad || !good
		im.Limit = v
	}
	if fe, ok := f["jitter"]; ok && im.Jitter != 0 && im.Delay == 0 {
		if _, hasDelay := f["delay"]; !hasDelay {
			fail(fe, "jitter varies a delay: it needs delay: as well (tc netem delay 20ms 5ms)")
		}
	}
	if im.Jitter > im.Delay && im.Delay != 0 {
		fe := f["jitter"]
		fail(fe, fmt.Sprintf("jitter %s is larger than delay %s: packets would need to leave before they arrived", im.Jitter, im.Delay))
	}
	if fe, ok := f["reorder"]; ok && im.Reorder != 0 && im.Delay == 0 {
		fail(fe, "reorder sends some packets at once and delays the others: it needs delay: as well (tc netem delay 10ms reorder 25%)")
	}
	return im, bad
}
