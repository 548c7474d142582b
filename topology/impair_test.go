package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		text string
	}{
		{"20mbit", 20e6, "20mbit"}, {"1.5Gbit", 1.5e9, "1.5gbit"}, {"100kbps", 800e3, "800kbit"},
		{"8bit", 8, "8bit"}, {"1mibit", 1 << 20, "1048576bit"}, {"10 mbit", 0, ""}, {"mbit", 0, ""},
		{"-1mbit", 0, ""}, {"20", 0, ""}, {"1xbit", 0, ""}, {"0mbit", 0, ""},
	} {
		got, msg := ParseRate(c.in)
		if got != c.want || (msg == "") != (c.want != 0) {
			t.Errorf("ParseRate(%q) = %d, %q; want %d", c.in, got, msg, c.want)
			continue
		}
		if c.want != 0 && FormatRate(got) != c.text {
			t.Errorf("FormatRate(%d) = %q, want %q", got, FormatRate(got), c.text)
		}
	}
}

func TestParsePercentAndDelay(t *testing.T) {
	for in, want := range map[string]float64{"20%": 20, "0": 0, "0.5 %": 0.5, "100%": 100} {
		if got, msg := ParsePercent(in); msg != "" || got != want {
			t.Errorf("ParsePercent(%q) = %v, %q", in, got, msg)
		}
	}
	for _, in := range []string{"-1%", "100.1%", "x", "NaN", "%"} {
		if _, msg := ParsePercent(in); msg == "" {
			t.Errorf("ParsePercent(%q) accepted", in)
		}
	}
	if d, msg := ParseDelay("20ms"); msg != "" || d != 20*time.Millisecond {
		t.Errorf("ParseDelay(20ms) = %v, %q", d, msg)
	}
}

func TestImpairParsed(t *testing.T) {
	lab, err := Parse("x.yaml", []byte(`name: imp
bridges:
  br0: {type: linux, ports: {p1: {impair: {loss: 20%}}}}
namespaces:
  a:
    interfaces:
      v1: {peer: br0/p1, impair: {rate: 20mbit, limit: 100}}
      v2: {peer: b/w2, impair: {}}
    taps:
      tap0: {impair: {delay: 20ms, jitter: 5ms, duplicate: 1, corrupt: 0.1%, reorder: 25%}}
  b:
    interfaces:
      w2: {impair: {loss: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range lab.Impairments {
		got = append(got, im.NS+"/"+im.Link+": "+im.Impair.String())
	}
	want := []string{
		"host/p1: loss 20%",
		"a/v1: rate 20mbit limit 100",
		"a/tap0: delay 20ms jitter 5ms duplicate 1% corrupt 0.1% reorder 25%",
	}
	if len(got) != len(want) {
		t.Fatalf("impairments %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("impairment %d = %q, want %q", i, got[i], want[i])
		}
	}
	if f := lab.Impairments[2].NetemFields(); len(f) != 5 {
		t.Errorf("netem fields %v", f)
	}
	if f := lab.Impairments[1].NetemFields(); len(f) != 0 {
		t.Errorf("netem fields of a rate: %v", f)
	}
	if err := ApplyPrefix(lab, "p1-"); err != nil {
		t.Fatal(err)
	}
	if im := lab.Impairments[0]; im.NS != "host" || im.Link != "p1-p1" {
		t.Errorf("prefixed bridge port impairment: %s/%s", im.NS, im.Link)
	}
	if im := lab.Impairments[1]; im.NS != "p1-a" || im.Link != "v1" {
		t.Errorf("prefixed namespace impairment: %s/%s", im.NS, im.Link)
	}
}

func TestEmulatorFieldsParsed(t *testing.T) {
	lab, err := Parse("x.yaml", []byte(`name: emu
namespaces:
  a:
    interfaces:
      v1: {peer: b/w1, impair: {delay: 20ms, jitter: 5ms, distribution: normal, gilbert-elliott: {p: 1%, r: 25%}, limit: 64kb}}
      v2: {peer: b/w2, impair: {trace: traces/x.trace, emulator: userspace, limit: 100}}
      v3: {peer: b/w3, impair: {jitter: 1ms, delay: 2ms, distribution: uniform, emulator: auto}}
  b:
    interfaces:
      w1: {impair: {gilbert-elliott: {p: 0.5, r: 10, loss-bad: 80%, loss-good: 1}}}
      w2: {}
      w3: {impair: {emulator: kernel, rate: 10mbit, limit: 150000b}}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, im := range lab.Impairments {
		got = append(got, im.NS+"/"+im.Link+": "+im.Impair.String()+" ["+strings.Join(im.EmulatorFields(), ",")+"]")
	}
	want := []string{
		"a/v1: delay 20ms jitter 5ms distribution normal gilbert-elliott p 1% r 25% loss-bad 100% loss-good 0% limit 64kb [distribution,gilbert-elliott,limit]",
		"a/v2: trace traces/x.trace limit 100 emulator userspace [trace]",
		"a/v3: delay 2ms jitter 1ms []",
		"b/w1: gilbert-elliott p 0.5% r 10% loss-bad 80% loss-good 1% [gilbert-elliott]",
		"b/w3: rate 10mbit limit 150000b emulator kernel []",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("impairments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if lab.Impairments[4].LimitBytes != 150000 {
		t.Errorf("limit 150000b read as %d bytes", lab.Impairments[4].LimitBytes)
	}
	if im := lab.Impairments[1]; im.Trace.Sum != "" {
		t.Errorf("Parse read the trace: %+v", im.Trace)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"150000b": 150000, "64kb": 65536, "64k": 65536, "1mb": 1 << 20, "1.5KiB": 1536, "64 MB": 64 << 20} {
		if got, msg := ParseSize(in); msg != "" || got != want {
			t.Errorf("ParseSize(%q) = %d, %q; want %d", in, got, msg, want)
		}
	}
	for _, in := range []string{"", "kb", "12", "1tb", "65mb", "0b", "-1kb", "3 furlongs"} {
		if _, msg := ParseSize(in); msg == "" {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for n, want := range map[int]string{1500: "1500b", 65536: "64kb", 1 << 20: "1mb", 1025: "1025b"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseTrace(t *testing.T) {
	tr, err := ParseTrace("t", []byte("# a comment\n0\n1\n1\n\n  5 \n"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tr.MS) != "[0 1 1 5]" || tr.Sum == "" {
		t.Errorf("parsed %v, sum %q", tr.MS, tr.Sum)
	}
	// The hash is of the entries, not the text.
	if same, _ := ParseTrace("u", []byte("0\n1\n1\n5")); same.Sum != tr.Sum {
		t.Errorf("same entries, another sum")
	}
	if other, _ := ParseTrace("u", []byte("0\n1\n2\n5")); other.Sum == tr.Sum {
		t.Errorf("other entries, the same sum")
	}
	if r := tr.Rate(1500); r != 4*1500*8/0.005 {
		t.Errorf("rate %v", r)
	}
	for in, want := range map[string]string{
		"1\n2\nx\n":   "t:3: \"x\" is not a whole number of milliseconds",
		"5\n4\n":      "t:2: 4 ms is before the entry above it (5 ms): a trace goes forward in time",
		"# nothing\n": "t: no entries: a trace holds one millisecond a line",
		"0\n0\n":      "t:2: the last entry is 0 ms: the trace repeats with the period of its last entry, which must be at least 1 ms",
		"-1\n":        "t:1: \"-1\" is not a whole number of milliseconds",
	} {
		_, err := ParseTrace("t", []byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("ParseTrace(%q) = %v, want %s", in, err, want)
		}
	}
}

// Load reads the traces beside the lab file, and says at the impairment's
// trace field what is wrong with one.
func TestLoadTraces(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "traces"), 0o755)
	os.WriteFile(filepath.Join(dir, "traces", "good.trace"), []byte("1\n2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "traces", "bad.trace"), []byte("2\n1\n"), 0o644)
	lab := `name: tr
namespaces:
  a:
    interfaces:
      v1: {peer: b/w1, impair: {trace: traces/good.trace}}
  b:
    interfaces:
      w1: {impair: {trace: %s}}
`
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(lab, "traces/good.trace")), 0o644)
	l, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	sum := l.Impairments[0].Trace.Sum
	if sum == "" || l.Impairments[1].Trace.Sum != sum || len(l.Traces) != 1 || l.Traces[sum].Name != "traces/good.trace" {
		t.Errorf("traces %+v, impairments %+v %+v", l.Traces, l.Impairments[0].Trace, l.Impairments[1].Trace)
	}
	for name, want := range map[string]string{
		"traces/bad.trace":  "bad.yaml:8:28: namespaces.b.interfaces.w1.impair.trace: trace " + filepath.Join(dir, "traces/bad.trace") + ":2: 1 ms is before the entry above it (2 ms): a trace goes forward in time",
		"traces/none.trace": "bad.yaml:8:28: namespaces.b.interfaces.w1.impair.trace: cannot read trace " + filepath.Join(dir, "traces/none.trace") + ": no such file or directory",
	} {
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte(fmt.Sprintf(lab, name)), 0o644)
		_, err := Load(bad)
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("Load with %s: %v\nwant ...%s", name, err, want)
		}
	}
}

// A timeline's impair events replay traces read as the file's are (a
// trace both name is read once), with an error at the event; what only
// the emulator does is refused on a TAP there too.
func TestEventTraces(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "traces"), 0o755)
	os.WriteFile(filepath.Join(dir, "traces", "a.trace"), []byte("1\n2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "traces", "b.trace"), []byte("1\n3\n"), 0o644)
	lab := `name: tr
namespaces:
  a:
    interfaces:
      v1: {peer: b/w1, impair: {trace: traces/a.trace}}
    taps: {tp0: {}}
  b:
    interfaces:
      w1: {}
timelines:
  t:
    events:
      - {at: 1s, impair: {b/w1: {trace: %s}, a/v1: {delay: 5ms}}}
`
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(lab, "traces/b.trace")), 0o644)
	l, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	ev := l.Timelines[0].Events[0].Impair
	if len(l.Traces) != 2 || ev[0].Impair.Trace.Sum == "" || l.Traces[ev[0].Impair.Trace.Sum].Name != "traces/b.trace" ||
		ev[1].Impair.Trace != l.Impairments[0].Trace {
		t.Errorf("traces %+v, events' %+v %+v", l.Traces, ev[0].Impair.Trace, ev[1].Impair.Trace)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(fmt.Sprintf(lab, "traces/none.trace")), 0o644)
	want := `bad.yaml:13:27: timelines.t.events[0].impair["b/w1"].trace: cannot read trace ` + filepath.Join(dir, "traces/none.trace")
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load: %v\nwant %s", err, want)
	}
	tap := strings.Replace(fmt.Sprintf(lab, "traces/b.trace"), "a/v1: {delay: 5ms}", "a/tp0: {distribution: normal, delay: 5ms, jitter: 1ms}", 1)
	want = `timelines.t.events[0].impair["a/tp0"]: a/tp0 is a TAP or TUN: netlab's userspace emulator carries links`
	if _, err := Parse("tap.yaml", []byte(tap)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Parse: %v\nwant %s", err, want)
	}
}
