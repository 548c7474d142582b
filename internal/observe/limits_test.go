package observe

import (
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/topology"
)

// A lab with more namespaces than the user namespace may make is refused at
// its namespaces, before anything is made.
func TestNamespaceLimit(t *testing.T) {
	lab, err := topology.Parse("three.yaml", []byte("name: three\nnamespaces:\n  a: {}\n  b: {}\n  c: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkNamespaceLimit(lab, 3, 3); err != nil {
		t.Errorf("3 of at most 3: %v", err)
	}
	err = checkNamespaceLimit(lab, 3, 2)
	if err == nil || !strings.Contains(err.Error(), "three.yaml:1:1: namespaces: 3 namespaces: this user namespace may have at most 2 network namespaces (user.max_net_namespaces)") {
		t.Errorf("3 of at most 2: %v", err)
	}
}
