package kernel

import (
	"fmt"
	"slices"
	"testing"

	"github.com/netlab-dev/netlab/internal/state"
)

// TestDeleteLinks: the named links and their peers go in one deletion;
// names that do not exist are skipped; the other links of the namespace,
// one of them in an interface group of its own, stay as they were.
func TestDeleteLinks(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	var mine, peers []string
	for i := range 4 {
		an, bn := fmt.Sprintf("%sa%d", a.Name(), i), fmt.Sprintf("%sb%d", b.Name(), i)
		must(t, a.AddVeth(an, "", b, bn, ""))
		mine, peers = append(mine, an), append(peers, bn)
	}
	keep := mine[3]
	kl, err := testHandle(t, a).LinkByName(keep)
	must(t, err)
	must(t, testHandle(t, a).LinkSetGroup(kl, groupBase|7))

	// The picker offers keep's group first: DeleteLinks must pass it by.
	var picked []uint32
	pick := func() uint32 {
		g := uint32(groupBase | 7)
		if len(picked) > 0 {
			g = groupBase | 8
		}
		picked = append(picked, g)
		return g
	}
	must(t, a.deleteLinks(append(mine[:3:3], "nosuch"), pick))
	if len(picked) != 2 {
		t.Errorf("groups picked: %#x; want keep's passed by, then another", picked)
	}
	got := observe(t, a)
	for _, name := range mine[:3] {
		if _, ok := got.Links[name]; ok {
			t.Errorf("%s survived DeleteLinks", name)
		}
	}
	for _, name := range peers[:3] {
		if _, ok := observe(t, b).Links[name]; ok {
			t.Errorf("peer %s survived DeleteLinks", name)
		}
	}
	mustLink(t, got, "lo")
	mustLink(t, got, keep)
	kl, err = testHandle(t, a).LinkByName(keep)
	must(t, err)
	if kl.Attrs().Group != groupBase|7 {
		t.Errorf("%s: group %#x; want it untouched", keep, kl.Attrs().Group)
	}
	mustLink(t, observe(t, b), peers[3])

	// Nothing left of the names: no error, nothing else touched.
	must(t, a.DeleteLinks(mine[:3]))
	// One name: deleted like DeleteLink.
	must(t, a.DeleteLinks([]string{keep}))
	if _, ok := observe(t, a).Links[keep]; ok {
		t.Errorf("%s survived DeleteLinks", keep)
	}
}

// TestDeleteLinksForeignJoinsGroup: a link of someone else that is put in
// the group after it was picked (as if another program had picked it too)
// is never deleted; the named links still go, one by one.
func TestDeleteLinksForeignJoinsGroup(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	var mine []string
	for i := range 3 {
		an := fmt.Sprintf("%sa%d", a.Name(), i)
		must(t, a.AddVeth(an, "", b, fmt.Sprintf("%sb%d", b.Name(), i), ""))
		mine = append(mine, an)
	}
	foreign := mine[2]
	fl, err := testHandle(t, a).LinkByName(foreign)
	must(t, err)
	pick := func() uint32 {
		g := uint32(groupBase | 0x1234)
		must(t, testHandle(t, a).LinkSetGroup(fl, int(g)))
		return g
	}
	must(t, a.deleteLinks(mine[:2], pick))
	got := observe(t, a)
	for _, name := range mine[:2] {
		if _, ok := got.Links[name]; ok {
			t.Errorf("%s survived", name)
		}
	}
	mustLink(t, got, foreign)
}

// Links made in the lab's group go in one request with no group set
// first; a link of someone else's in that group makes them go by the
// usual way, and it stays.
func TestDeleteLinksInLabGroup(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	g := LabGroup("lab-" + a.Name())
	if g&0xffff0000 != labGroupBase || LabGroup("other") == g {
		t.Errorf("LabGroup: %#x", g)
	}
	var mine []string
	for i := range 3 {
		an := fmt.Sprintf("%sa%d", a.Name(), i)
		must(t, a.MakeVeth(Veth{Name: an, Peer: b, PeerName: fmt.Sprintf("%sb%d", b.Name(), i), End: VethEnd{Group: g}}))
		mine = append(mine, an)
	}
	must(t, a.deleteLinks(mine, func() uint32 { t.Error("a group was picked: the lab's should have served"); return groupBase | 1 }))
	for _, name := range mine {
		if _, ok := observe(t, a).Links[name]; ok {
			t.Errorf("%s survived", name)
		}
	}

	// Someone else's link in the same group: the lab's go one group over.
	mine = nil
	for i := range 3 {
		an := fmt.Sprintf("%sc%d", a.Name(), i)
		must(t, a.MakeVeth(Veth{Name: an, Peer: b, PeerName: fmt.Sprintf("%sd%d", b.Name(), i), End: VethEnd{Group: g}}))
		mine = append(mine, an)
	}
	foreign := mine[2]
	must(t, a.deleteLinks(mine[:2], func() uint32 { return groupBase | 0x77 }))
	got := observe(t, a)
	for _, name := range mine[:2] {
		if _, ok := got.Links[name]; ok {
			t.Errorf("%s survived", name)
		}
	}
	mustLink(t, got, foreign)
}

// DeleteLabGroup deletes the lab's group when it holds only links marked
// with the lab, and leaves a group with anything else in it, or an empty
// one, to the caller.
func TestDeleteLabGroup(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	lab := "dlg" + uniq(t)
	group := int(LabGroup(lab))
	veth := func(i int, alias string, inGroup bool) string {
		an := fmt.Sprintf("%sa%d", a.Name(), i)
		must(t, a.AddVeth(an, "", b, fmt.Sprintf("%sb%d", b.Name(), i), ""))
		must(t, a.SetAlias(an, alias))
		if inGroup {
			l, err := testHandle(t, a).LinkByName(an)
			must(t, err)
			must(t, testHandle(t, a).LinkSetGroup(l, group))
		}
		return an
	}
	del := func() []string {
		var deleted []string
		must(t, a.inside(func() error {
			var err error
			deleted, err = DeleteLabGroup(lab)
			return err
		}))
		return deleted
	}

	if got := del(); got != nil {
		t.Errorf("DeleteLabGroup of an empty group says it deleted %v", got)
	}
	mine := []string{veth(0, state.LinkAlias(lab, "host", "x0"), true), veth(1, state.LinkAlias(lab, "host", "x1"), true)}
	outside := veth(2, state.LinkAlias(lab, "host", "x2"), false)
	if got := del(); !slices.Equal(got, mine) {
		t.Fatalf("DeleteLabGroup of a group of the lab's links deleted %v, want %v", got, mine)
	}
	got := observe(t, a)
	for _, name := range mine {
		if _, ok := got.Links[name]; ok {
			t.Errorf("%s survived", name)
		}
	}
	mustLink(t, got, outside)

	marked := veth(3, state.LinkAlias(lab, "host", "x3"), true)
	theirs := veth(4, state.LinkAlias(lab+"x", "host", "x4"), true)
	unmarked := veth(5, "", true)
	if got := del(); got != nil {
		t.Errorf("DeleteLabGroup deleted %v, from a group holding another lab's link and an unmarked one", got)
	}
	got = observe(t, a)
	for _, name := range []string{marked, theirs, unmarked} {
		mustLink(t, got, name)
	}
}
