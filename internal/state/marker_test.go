package state

import "testing"

func TestNFTTable(t *testing.T) {
	for lab, want := range map[string]string{
		"blue":          "netlab_blue",
		"blue-red":      "netlab_blue_red",
		"a-b-c":         "netlab_a_b_c",
		"already_under": "netlab_already_under",
	} {
		if got := NFTTable(lab); got != want {
			t.Errorf("NFTTable(%q) = %q, want %q", lab, got, want)
		}
	}
}
