package engine

import (
	"errors"
	"slices"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

const eventsLab = `
name: ev
bridges:
  br0: {type: linux}
namespaces:
  a: {interfaces: {eth0: {peer: br0/pa, addresses: [10.6.0.1/24]}}}
  b: {interfaces: {eth0: {peer: br0/pb, addresses: [10.6.0.2/24]}}}
  c:
    interfaces: {eth0: {peer: br0/pc, addresses: [10.6.0.3/24]}}
    tuns: {tun0: {addresses: [10.7.0.1/24]}}
`

func eventsTopology(t *testing.T, prefix string) *topology.Lab {
	t.Helper()
	lab, err := topology.Parse("ev.yaml", []byte(eventsLab))
	if err == nil {
		err = topology.ApplyPrefix(lab, prefix)
	}
	if err != nil {
		t.Fatal(err)
	}
	return lab
}

// A partition's namespaces are named as in the file or on the machine; its
// name is given or the first free; the same cut again is the partition in
// force; what cannot be a partition is refused with a typed error.
func TestResolvePartition(t *testing.T) {
	lab := eventsTopology(t, "x-")
	j := &state.Journal{Prefix: "x-", Partitions: []state.Partition{{Name: "p1", A: []string{"x-a"}, B: []string{"x-b"}}}}
	for _, c := range []struct {
		in   state.Partition
		want state.Partition
		err  error
	}{
		{state.Partition{A: []string{"a"}, B: []string{"x-c"}}, state.Partition{Name: "p2", A: []string{"x-a"}, B: []string{"x-c"}}, nil},
		{state.Partition{A: []string{"b"}, B: []string{"a"}}, state.Partition{Name: "p1", A: []string{"x-a"}, B: []string{"x-b"}}, nil},
		{state.Partition{A: []string{"b"}, B: []string{"a"}, OneWay: true}, state.Partition{Name: "p2", A: []string{"x-b"}, B: []string{"x-a"}}, nil},
		{state.Partition{A: []string{"x-a"}, B: []string{"b", "b"}}, state.Partition{Name: "p1", A: []string{"x-a"}, B: []string{"x-b"}}, nil},
		{state.Partition{Name: "p1", A: []string{"a"}, B: []string{"b"}}, state.Partition{Name: "p1", A: []string{"x-a"}, B: []string{"x-b"}}, nil},
		{state.Partition{Name: "p1", A: []string{"a"}, B: []string{"c"}}, state.Partition{}, ErrPartitionExists},
		{state.Partition{Name: "Bad_Name", A: []string{"a"}, B: []string{"c"}}, state.Partition{}, ErrBadPartition},
		{state.Partition{A: []string{"a"}, B: []string{"a"}}, state.Partition{}, ErrBadPartition},
		{state.Partition{A: []string{"a"}}, state.Partition{}, ErrBadPartition},
		{state.Partition{A: []string{"host"}, B: []string{"a"}}, state.Partition{}, ErrBadPartition},
		{state.Partition{A: []string{"a"}, B: []string{"nope"}}, state.Partition{}, ErrNoNamespace},
	} {
		got, err := resolvePartition(lab, j, c.in)
		if !errors.Is(err, c.err) || c.err == nil && (got.Name != c.want.Name || !slices.Equal(got.A, c.want.A) || !slices.Equal(got.B, c.want.B)) {
			t.Errorf("resolvePartition(%+v) = %+v, %v; want %+v, %v", c.in, got, err, c.want, c.err)
		}
	}
}

// A cable is named as in the file or on the machine; a TUN, a bridge's own
// interface and an unknown name are refused with typed errors.
func TestResolveCable(t *testing.T) {
	lab := eventsTopology(t, "x-")
	for _, c := range []struct {
		ns, link, wantNS, wantLink string
		err                        error
	}{
		{"a", "eth0", "x-a", "eth0", nil},
		{"x-a", "eth0", "x-a", "eth0", nil},
		{"host", "pa", "host", "x-pa", nil},
		{"host", "x-pb", "host", "x-pb", nil},
		{"c", "tun0", "", "", ErrNoCable},
		{"host", "br0", "", "", ErrNoCable},
		{"a", "nope", "", "", ErrNoInterface},
	} {
		ns, link, err := resolveCable(lab, "x-", c.ns, c.link)
		if !errors.Is(err, c.err) || ns != c.wantNS || link != c.wantLink {
			t.Errorf("resolveCable(%s/%s) = %s/%s, %v; want %s/%s, %v", c.ns, c.link, ns, link, err, c.wantNS, c.wantLink, c.err)
		}
	}
}
