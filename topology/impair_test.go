package topology

import (
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
