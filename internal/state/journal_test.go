package state

import (
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
