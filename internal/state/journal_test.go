package state

import (
	"slices"
	"testing"
)

func TestMarkers(t *testing.T) {
	lab, ns, ifn, ok := ParseLinkAlias(LinkAlias("blue-red", "host", "veth0"))
	if !ok || lab != "blue-red" || ns != "host" || ifn != "veth0" {
		t.Errorf("ParseLinkAlias round trip: %q %q %q %v", lab, ns, ifn, ok)
	}
	for _, bad := range []string{"", "netlab:", "netlab:x", "netlab:x:y", "other:x:y/z", "netlab::y/z"} {
		if _, _, _, ok := ParseLinkAlias(bad); ok {
			t.Errorf("ParseLinkAlias(%q) accepted", bad)
		}
	}
	if l, ok := ParseNamespaceAlias(NamespaceAlias("a")); !ok || l != "a" {
		t.Errorf("namespace alias round trip")
	}
	if _, ok := ParseNamespaceAlias(LinkAlias("a", "b", "c")); ok {
		t.Errorf("a link alias parsed as a namespace alias")
	}
	if FlowCookie("a") == FlowCookie("b") || FlowCookie("a") == LearnCookie("a") {
		t.Errorf("cookies not distinct")
	}
	// Stable across versions and machines: a lab's flows installed by one
	// netlab are found by the next.
	if c := FlowCookie("blue-red"); c != 0x1edf139cf945aa01 {
		t.Errorf("FlowCookie(blue-red) = %#x, want 0x1edf139cf945aa01", c)
	}
}

// Two partitions are the same cut whatever the order of their namespaces,
// and of their groups when both ways; one way, the direction matters.
func TestPartitionSame(t *testing.T) {
	ab := Partition{A: []string{"a", "b"}, B: []string{"c"}}
	for _, c := range []struct {
		q    Partition
		same bool
	}{
		{Partition{Name: "x", A: []string{"b", "a"}, B: []string{"c"}}, true},
		{Partition{A: []string{"c"}, B: []string{"a", "b"}}, true},
		{Partition{A: []string{"a"}, B: []string{"c"}}, false},
		{Partition{A: []string{"a", "b"}, B: []string{"c"}, OneWay: true}, false},
	} {
		if got := ab.Same(c.q); got != c.same {
			t.Errorf("%+v.Same(%+v) = %v, want %v", ab, c.q, got, c.same)
		}
	}
	one := Partition{A: []string{"a"}, B: []string{"c"}, OneWay: true}
	if one.Same(Partition{A: []string{"c"}, B: []string{"a"}, OneWay: true}) {
		t.Errorf("one way a -> c is the same as c -> a")
	}
}

// The journal's lists stay sorted and without duplicates however names
// come; removing many at once leaves the rest in order.
func TestJournalNameLists(t *testing.T) {
	var j Journal
	for _, n := range []string{"h002", "h001", "h003", "h002", "a", "h010"} {
		j.AddNamespace(n)
	}
	if want := []string{"a", "h001", "h002", "h003", "h010"}; !slices.Equal(j.Namespaces, want) {
		t.Errorf("namespaces %v, want %v", j.Namespaces, want)
	}
	j.RemoveNamespaces("h002", "a", "absent")
	if want := []string{"h001", "h003", "h010"}; !slices.Equal(j.Namespaces, want) {
		t.Errorf("after removing: %v, want %v", j.Namespaces, want)
	}
	j.AddHostLink("p2")
	j.AddHostLink("p1")
	j.RemoveHostLinks("p2")
	if want := []string{"p1"}; !slices.Equal(j.HostLinks, want) {
		t.Errorf("host links %v, want %v", j.HostLinks, want)
	}
}
