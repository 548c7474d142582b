package observe

import (
	"fmt"
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

// Open files do not grow with the lab: 10,000 namespaces need what 3 do, a
// limit that allows fewer than the fewest namespaces open at once is
// refused at the lab's namespaces, and the message says what to raise.
func TestFileLimit(t *testing.T) {
	lab, err := topology.Parse("three.yaml", []byte("name: three\nnamespaces:\n  a: {}\n  b: {}\n  c: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	need := uint64(minFiles())
	if need > 1024 {
		t.Errorf("netlab needs %d files at least: more than the usual default soft limit of 1024", need)
	}
	for _, n := range []int{3, 10000} {
		if err := fileLimitError(lab, n, need, 1024, 4096); err != nil {
			t.Errorf("%d namespaces within 1024 files: %v", n, err)
		}
	}
	err = fileLimitError(lab, 10000, need, need-1, need-1)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("three.yaml:1:1: namespaces: 10000 namespaces: netlab needs about %d open files whatever the lab's size", need)) ||
		!strings.Contains(err.Error(), "raise the limit") {
		t.Errorf("below the least: %v", err)
	}
}
