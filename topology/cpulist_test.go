package topology

import (
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "", want: nil},
		{in: "0", want: []int{0}},
		{in: "0-3", want: []int{0, 1, 2, 3}},
		{in: "0-1,4,6-7", want: []int{0, 1, 4, 6, 7}},
		{in: "3,1,1,2-3", want: []int{1, 2, 3}},
		{in: "1023", want: []int{1023}},
		{in: "1024", bad: true},
		{in: "3-1", bad: true},
		{in: "-1", bad: true},
		{in: "1,", bad: true},
		{in: "a", bad: true},
		{in: "+1", bad: true},
		{in: " 1", bad: true},
		{in: "1-", bad: true},
	} {
		got, err := ParseCPUList(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseCPUList(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestFormatCPUList(t *testing.T) {
	for _, c := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{1}, "1"},
		{[]int{0, 1, 2, 5}, "0-2,5"},
		{[]int{0, 2, 4}, "0,2,4"},
		{[]int{3, 4}, "3-4"},
	} {
		got := FormatCPUList(c.in)
		if got != c.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", c.in, got, c.want)
		}
		back, err := ParseCPUList(got)
		if err != nil || !slices.Equal(back, c.in) && len(c.in) > 0 {
			t.Errorf("ParseCPUList(FormatCPUList(%v)) = %v, %v", c.in, back, err)
		}
	}
}
