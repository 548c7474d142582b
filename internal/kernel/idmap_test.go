package kernel

import "testing"

func TestIDMap(t *testing.T) {
	identity, err := parseIDMap("         0          0 4294967295\n")
	if err != nil {
		t.Fatal(err)
	}
	rootless, err := parseIDMap("0 65534 1\n")
	if err != nil {
		t.Fatal(err)
	}
	two, err := parseIDMap("0 1000 1\n1 100000 65536\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		m       idMap
		outside int
		inside  int
		ok      bool
	}{
		{"identity", identity, 1000, 1000, true},
		{"identity nobody", identity, -1, -1, true},
		{"rootless owner", rootless, 65534, 0, true},
		{"rootless other user", rootless, 1000, 0, false},
		{"rootless nobody", rootless, -1, -1, true},
		{"subordinate range", two, 100005, 6, true},
		{"first of two", two, 1000, 0, true},
		{"past the range", two, 100000 + 65536, 0, false},
	} {
		in, ok := c.m.inside(c.outside)
		if ok != c.ok || ok && in != c.inside {
			t.Errorf("%s: inside(%d) = %d, %v; want %d, %v", c.name, c.outside, in, ok, c.inside, c.ok)
		}
		if ok && c.m.outside(in) != c.outside {
			t.Errorf("%s: outside(%d) = %d, want %d", c.name, in, c.m.outside(in), c.outside)
		}
	}
	if got := rootless.outside(7); got != 7 {
		t.Errorf("an unmapped id stays: got %d", got)
	}
	for _, bad := range []string{"0 1", "a b c"} {
		if _, err := parseIDMap(bad); err == nil {
			t.Errorf("parseIDMap(%q): no error", bad)
		}
	}
}
