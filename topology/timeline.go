package topology

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Timeline is a named schedule of events on a running lab (timelines:
// NAME:): cables pulled and plugged back, partitions made and healed,
// impairments changed, each at a time after the timeline starts, perhaps
// every period for a count, perhaps undone after a while. netlab runs it in
// a supervised process of the lab, each event one locked, journaled change
// like `netlab link`, `netlab partition` and `netlab impair`.
type Timeline struct {
	Name string `json:"name"`
	// Start is StartUp when `netlab up` starts the timeline with the lab,
	// StartManual when `netlab timeline LAB start NAME` (or a test) does.
	Start  string   `json:"start,omitempty"`
	Events []*Event `json:"events"`
	Pos    Pos      `json:"-"`
	Path   string   `json:"-"`
}

// When a timeline starts.
const (
	StartManual = "manual"
	StartUp     = "up"
)

// Limits of timelines.
const (
	MaxTimelineName   = 24
	MaxTimelineEvents = 1000
	// MaxEventTime bounds at: and for: (a week: a lab runs for hours).
	MaxEventTime = 7 * 24 * time.Hour
	// MinEventPeriod bounds every: and for: from below: each event is a
	// locked change of the lab that takes the engine some milliseconds.
	MinEventPeriod = 10 * time.Millisecond
	MaxEventCount  = 1_000_000
)

// Event is one entry of a timeline: one action, at At after the timeline
// starts, again every Every (Count times in all; 0 with Every: until the
// timeline is stopped), each time undone For later (a cable plugged back,
// a partition healed, the file's impairment back; 0: never).
type Event struct {
	At    time.Duration `json:"at"`
	Every time.Duration `json:"every,omitempty"`
	Count int           `json:"count,omitempty"`
	For   time.Duration `json:"for,omitempty"`

	// Exactly one action. Interfaces are "ns/iface" as the file names
	// them (host/PORT for a bridge port or a host-side veth end).
	LinkDown  []string       `json:"link_down,omitempty"`
	LinkUp    []string       `json:"link_up,omitempty"`
	Partition *PartitionSpec `json:"partition,omitempty"`
	Heal      []string       `json:"heal,omitempty"`
	// Impair is each interface's whole impairment from the event on: the
	// file's, with the fields the event writes replaced; in file order.
	Impair []InterfaceImpair `json:"impair,omitempty"`

	Pos  Pos    `json:"-"`
	Path string `json:"-"`
	// FieldPos is where each key of the event is written.
	FieldPos map[string]Pos `json:"-"`
}

// InterfaceImpair is an impair event's impairment of one interface.
type InterfaceImpair struct {
	// Interface is "ns/iface" as the file names it.
	Interface string `json:"interface"`
	Impair    Impair `json:"impair"`
	Pos       Pos    `json:"-"`
}

// PartitionSpec is the partition an event makes: packets between the
// namespaces of A and those of B dropped (one way: only A's to B).
type PartitionSpec struct {
	Name   string   `json:"name"`
	A      []string `json:"a"`
	B      []string `json:"b"`
	OneWay bool     `json:"one_way,omitempty"`
}

// The kinds of event actions, as keys of an event and in the event log.
const (
	EventLinkDown  = "link-down"
	EventLinkUp    = "link-up"
	EventPartition = "partition"
	EventHeal      = "heal"
	EventImpair    = "impair"
)

// Kind is the event's action: one of the Event* kinds ("" when it has
// none, or more than one).
func (e *Event) Kind() string {
	var kinds []string
	if len(e.LinkDown) > 0 {
		kinds = append(kinds, EventLinkDown)
	}
	if len(e.LinkUp) > 0 {
		kinds = append(kinds, EventLinkUp)
	}
	if e.Partition != nil {
		kinds = append(kinds, EventPartition)
	}
	if len(e.Heal) > 0 {
		kinds = append(kinds, EventHeal)
	}
	if len(e.Impair) > 0 {
		kinds = append(kinds, EventImpair)
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// Occurrences is how many times the event happens: 1 without Every, Count
// with it, and -1 for ever (Every without Count).
func (e *Event) Occurrences() int {
	switch {
	case e.Every == 0:
		return 1
	case e.Count == 0:
		return -1
	}
	return e.Count
}

// ImpairNames lists the interfaces of an impair event, in its order.
func (e *Event) ImpairNames() []string {
	var out []string
	for _, ii := range e.Impair {
		out = append(out, ii.Interface)
	}
	return out
}

// Place is where the event's key is written in its file (the event's own
// place when it is not, or the event was made in Go).
func (e *Event) Place(key string) Pos { return e.posOf(key) }

func (e *Event) posOf(key string) Pos {
	if p, ok := e.FieldPos[key]; ok {
		return p
	}
	return e.Pos
}

// Timeline returns the lab's timeline called name, or nil.
func (l *Lab) Timeline(name string) *Timeline {
	for _, t := range l.Timelines {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func checkTimelineName(s string) string {
	switch {
	case s == "":
		return "empty timeline name"
	case len(s) > MaxTimelineName:
		return fmt.Sprintf("timeline name %q is %d characters; at most %d", s, len(s), MaxTimelineName)
	case !simpleName(s, 0):
		return fmt.Sprintf("timeline name %q: use a-z, 0-9 and -, starting with a letter or digit", s)
	}
	return ""
}

// CheckTimeline checks a timeline made in Go (a test's) against the lab as
// the parser checks the file's, and fills in what the parser defaults (the
// partitions' names). Names may be the file's or the machine's (with the
// lab's prefix). It returns every problem as an ErrorList.
func (l *Lab) CheckTimeline(t *Timeline) error {
	var errs ErrorList
	errorf := func(at Pos, path, format string, args ...any) {
		errs = append(errs, &Error{File: l.File, Pos: at, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if t.Path == "" {
		t.Path = "timelines." + t.Name
	}
	if msg := checkTimelineName(t.Name); msg != "" {
		errorf(t.Pos, t.Path, "%s", msg)
	}
	switch t.Start {
	case "", StartManual, StartUp:
	default:
		errorf(t.Pos, t.Path+".start", "want %s or %s, got %q", StartUp, StartManual, t.Start)
	}
	for i, e := range t.Events {
		if e == nil {
			errorf(t.Pos, index(t.Path+".events", i), "no event")
			continue
		}
		if e.Path == "" {
			e.Path = index(t.Path+".events", i)
		}
		l.checkEvent(t, i, e, errorf)
	}
	if len(errs) > 0 {
		return errs.sortAndDedup()
	}
	return nil
}

// checkTimelines checks the file's timelines once the lab is whole.
func (p *parser) checkTimelines() {
	for _, t := range p.lab.Timelines {
		for i, e := range t.Events {
			p.lab.checkEvent(t, i, e, p.errorf)
		}
	}
}

// checkEvent checks one event of timeline t (its i-th) against the lab:
// one action, times within bounds, the interfaces and namespaces it names.
func (l *Lab) checkEvent(t *Timeline, i int, e *Event, errorf func(Pos, string, string, ...any)) {
	kind := e.Kind()
	if kind == "" {
		errorf(e.Pos, e.Path, "want exactly one of link-down, link-up, partition, heal, impair")
		return
	}
	timeErr := func(key string, d time.Duration, lo, hi time.Duration) {
		if d < lo || d > hi {
			errorf(e.posOf(key), join(e.Path, key), "%s is out of range %s..%s", d, lo, hi)
		}
	}
	timeErr("at", e.At, 0, MaxEventTime)
	if e.Every != 0 {
		timeErr("every", e.Every, MinEventPeriod, MaxEventTime)
	}
	if e.For != 0 {
		timeErr("for", e.For, MinEventPeriod, MaxEventTime)
	}
	switch {
	case e.Count < 0 || e.Count > MaxEventCount:
		errorf(e.posOf("count"), join(e.Path, "count"), "%d is out of range 1..%d", e.Count, MaxEventCount)
	case e.Count > 1 && e.Every == 0:
		errorf(e.posOf("count"), join(e.Path, "count"), "count: %d repeats the event: it needs every: as well (every: 2s)", e.Count)
	}
	if e.Every != 0 && e.For >= e.Every {
		errorf(e.posOf("for"), join(e.Path, "for"), "for: %s is not shorter than every: %s: the event would happen again before it was undone", e.For, e.Every)
	}
	switch kind {
	case EventLinkDown, EventLinkUp:
		names := e.LinkDown
		if kind == EventLinkUp {
			names = e.LinkUp
		}
		for j, ref := range names {
			path := join(e.Path, kind)
			if len(names) > 1 {
				path = index(path, j)
			}
			if msg := l.checkCable(ref); msg != "" {
				errorf(e.posOf(kind), path, "%s", msg)
			}
		}
	case EventPartition:
		l.checkEventPartition(t, i, e, errorf)
	case EventHeal:
		if e.For != 0 {
			errorf(e.posOf("for"), join(e.Path, "for"), "a heal is not undone: the partition's groups are its own (write the partition with for: instead)")
		}
		for _, n := range e.Heal {
			if !ValidPartitionName(n) {
				errorf(e.posOf(kind), join(e.Path, kind), "partition name %q: use 1 to 32 of a-z, 0-9 and -, starting with a letter or digit", n)
			}
		}
	case EventImpair:
		seen := map[string]bool{}
		for _, ii := range e.Impair {
			k, at := ii.Interface, ii.Pos
			if at == (Pos{}) {
				at = e.posOf(kind)
			}
			ns, link, ok := strings.Cut(k, "/")
			switch {
			case !ok || ns == "" || link == "" || strings.Contains(link, "/"):
				errorf(at, join(join(e.Path, kind), k), "want NS/IFACE (host/IFACE for a bridge port or a host-side veth end)")
			case seen[k]:
				errorf(at, join(join(e.Path, kind), k), "interface %s is impaired twice in one event", k)
			case !l.hasImpairable(ns, link):
				errorf(at, join(join(e.Path, kind), k), "no interface %s in the lab (want a veth end, TAP or TUN)", k)
			case !l.linkEndsAt(ns, link) && (len(ii.Impair.EmulatorFields()) > 0 || ii.Impair.Emulator == EmulatorUserspace):
				errorf(at, join(join(e.Path, kind), k), "%s is a TAP or TUN: netlab's userspace emulator carries links between two interfaces it makes (veth ends, bridge ports), so it takes only what the kernel applies", k)
			}
			seen[k] = true
		}
	}
}

// checkEventPartition checks a partition event's groups and gives it its
// name: the timeline's and the event's number (chaos-1) unless written. A
// name stands for one cut in a timeline: the same name with other groups
// would have the engine refuse the second.
func (l *Lab) checkEventPartition(t *Timeline, i int, e *Event, errorf func(Pos, string, string, ...any)) {
	pt := e.Partition
	path := join(e.Path, EventPartition)
	at := e.posOf(EventPartition)
	if pt.Name == "" {
		pt.Name = fmt.Sprintf("%s-%d", t.Name, i+1)
	}
	if !ValidPartitionName(pt.Name) {
		errorf(at, join(path, "name"), "partition name %q: use 1 to 32 of a-z, 0-9 and -, starting with a letter or digit", pt.Name)
	}
	seen := map[string]string{}
	for _, g := range []struct {
		key   string
		names []string
	}{{"a", pt.A}, {"b", pt.B}} {
		if len(g.names) == 0 {
			errorf(at, join(path, g.key), "required: a list of namespaces, such as [n1]")
		}
		for _, n := range g.names {
			switch {
			case n == Host:
				errorf(at, join(path, g.key), "the host is shared with the machine and other labs, and is in no partition")
			case l.findNS(n) == nil:
				errorf(at, join(path, g.key), "no namespace %s in the lab", n)
			case seen[n] != "" && seen[n] != g.key:
				errorf(at, join(path, g.key), "namespace %s is in both groups", n)
			}
			seen[n] = g.key
		}
	}
	for j, other := range t.Events[:i] {
		if q := other.Partition; q != nil && q.Name == pt.Name && !samePartition(q, pt) {
			errorf(at, join(path, "name"), "partition %s is made with other groups by event %d: a name stands for one cut (heal it, or name this one otherwise)", pt.Name, j)
		}
	}
}

// samePartition says whether two partitions cut the same traffic (as
// state.Partition.Same: a both-ways cut with its groups swapped is the same).
func samePartition(p, q *PartitionSpec) bool {
	sorted := func(s []string) []string { c := slices.Clone(s); slices.Sort(c); return c }
	same := func(a, b []string) bool { return slices.Equal(sorted(a), sorted(b)) }
	if p.OneWay != q.OneWay {
		return false
	}
	return same(p.A, q.A) && same(p.B, q.B) || !p.OneWay && same(p.A, q.B) && same(p.B, q.A)
}

// findNS finds a namespace as the file or the machine (with the lab's
// prefix) names it.
func (l *Lab) findNS(name string) *Namespace {
	if name == Host {
		return l.Host
	}
	if n := l.Namespace(name); n != nil {
		return n
	}
	if l.Prefix != "" {
		return l.Namespace(l.Prefix + name)
	}
	return nil
}

// linkEndsAt lists the veth ends of the lab named ns/link, as in the file
// or on the machine (host-side names carry the prefix).
func (l *Lab) linkEndsAt(ns, link string) bool {
	n := l.findNS(ns)
	if n == nil {
		return false
	}
	names := []string{link}
	if ns == Host && l.Prefix != "" {
		names = append(names, l.Prefix+link)
	}
	for _, k := range l.Links {
		for _, e := range []LinkEnd{k.A, k.B} {
			if e.NS == n.Name && slices.Contains(names, e.Name) {
				return true
			}
		}
	}
	return false
}

// checkCable says why the cable of ref ("ns/iface") cannot be pulled, or
// "": it must be a veth end of the lab.
func (l *Lab) checkCable(ref string) string {
	ns, link, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || link == "" || strings.Contains(link, "/") {
		return fmt.Sprintf("%q: want NS/IFACE (host/IFACE for a bridge port or a host-side veth end)", ref)
	}
	if l.linkEndsAt(ns, link) {
		return ""
	}
	if n := l.findNS(ns); n != nil {
		for _, t := range n.TUNs {
			if t.Name == link {
				return fmt.Sprintf("%s is a TUN device, whose carrier is its program's: it has no cable to pull", ref)
			}
		}
		for _, t := range n.TAPs {
			if t.Name == link {
				return fmt.Sprintf("%s is a TAP device, whose carrier is its program's: it has no cable to pull", ref)
			}
		}
		if ns == Host && (l.Bridge(link) != nil || l.Bridge(l.Prefix+link) != nil) {
			return fmt.Sprintf("%s is a bridge's own interface: pull the cable of a port instead", ref)
		}
	}
	return fmt.Sprintf("no interface %s in the lab (want a veth end: a namespace's interface, or host/PORT)", ref)
}

// hasImpairable says whether ns/link is an interface an impairment may act
// on: a veth end, a TAP or a TUN.
func (l *Lab) hasImpairable(ns, link string) bool {
	if l.linkEndsAt(ns, link) {
		return true
	}
	n := l.findNS(ns)
	if n == nil {
		return false
	}
	for _, t := range n.TAPs {
		if t.Name == link {
			return true
		}
	}
	for _, t := range n.TUNs {
		if t.Name == link {
			return true
		}
	}
	return false
}

// FileImpair is the impairment the file gives ns/link (as the file or the
// machine names it): the zero Impair when none.
func (l *Lab) FileImpair(ns, link string) Impair {
	n := l.findNS(ns)
	if n == nil {
		return Impair{}
	}
	for _, im := range l.Impairments {
		if im.NS == n.Name && (im.Link == link || ns == Host && im.Link == l.Prefix+link) {
			return im.Impair
		}
	}
	return Impair{}
}
