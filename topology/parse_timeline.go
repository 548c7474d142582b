package topology

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// pendingImpair is an impair event's block as written, merged over the
// file's impairment of its interface once the whole lab is read.
type pendingImpair struct {
	event *Event
	index int // in event.Impair
	block *Impairment
}

// parseTimelines reads timelines: NAME: {start, events} (or NAME: [events],
// the events alone).
func (p *parser) parseTimelines(e entry) {
	for _, te := range p.entries(e.v, e.path) {
		t := &Timeline{Name: te.key, Start: StartManual, Pos: pos(te.k), Path: te.path}
		if msg := checkTimelineName(te.key); msg != "" {
			p.errorf(pos(te.k), te.path, "%s", msg)
		}
		events := entry{key: "events", k: te.k, v: te.v, path: join(te.path, "events")}
		if te.v.Kind != yaml.SequenceNode {
			f := p.fields(te.v, te.path, "timeline")
			if se, ok := f["start"]; ok {
				if s, ok := p.oneOf(se, StartManual, StartUp); ok {
					t.Start = s
				}
			}
			ee, ok := f["events"]
			if !ok {
				if te.v.Kind == yaml.MappingNode {
					p.errorf(pos(te.k), join(te.path, "events"), "required: the timeline's events, such as [{at: 10s, link-down: n1/eth0, for: 2s}]")
				}
				continue
			}
			events = ee
		}
		items := p.list(events)
		if len(items) > MaxTimelineEvents {
			p.errorf(pos(events.v), events.path, "%d events; a timeline has at most %d", len(items), MaxTimelineEvents)
			continue
		}
		for i, item := range items {
			if ev := p.parseEvent(item, index(events.path, i)); ev != nil {
				t.Events = append(t.Events, ev)
			}
		}
		if len(t.Events) == 0 && len(items) == 0 {
			p.errorf(pos(events.v), events.path, "a timeline needs at least one event")
		}
		p.lab.Timelines = append(p.lab.Timelines, t)
	}
}

// parseEvent reads one event of a timeline; nil after an error (recorded).
func (p *parser) parseEvent(n *yaml.Node, path string) *Event {
	if n.Kind != yaml.MappingNode {
		p.errorf(pos(n), path, "want a mapping such as {at: 10s, link-down: n1/eth0, for: 2s}, got %s", describe(n))
		return nil
	}
	ev := &Event{Pos: pos(n), Path: path, FieldPos: map[string]Pos{}}
	f := p.fields(n, path, "event")
	ok := len(f) == len(n.Content)/2
	for k, fe := range f {
		ev.FieldPos[k] = pos(fe.v)
	}
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"at", &ev.At}, {"every", &ev.Every}, {"for", &ev.For}} {
		fe, found := f[d.key]
		if !found {
			continue
		}
		v, good := p.duration(fe)
		ok = ok && good
		*d.to = v
	}
	if fe, found := f["every"]; found && ev.Every == 0 && ok {
		p.errorf(pos(fe.v), fe.path, "every: 0 repeats nothing: leave it out")
		ok = false
	}
	if fe, found := f["for"]; found && ev.For == 0 && ok {
		p.errorf(pos(fe.v), fe.path, "for: 0 undoes the event at once: leave it out")
		ok = false
	}
	if ce, found := f["count"]; found {
		c, good := p.integer(ce, 1, MaxEventCount)
		ok = ok && good
		ev.Count = c
	}
	refs := func(key string) []string {
		fe, found := f[key]
		if !found {
			return nil
		}
		if fe.v.Kind == yaml.ScalarNode && fe.v.ShortTag() == "!!str" {
			return []string{fe.v.Value}
		}
		if fe.v.Kind != yaml.SequenceNode {
			p.errorf(pos(fe.v), fe.path, "want NS/IFACE or a list of them, got %s", describe(fe.v))
			ok = false
			return nil
		}
		var out []string
		for _, it := range p.stringList(fe, "NS/IFACE") {
			out = append(out, it.value)
		}
		if len(out) == 0 {
			p.errorf(pos(fe.v), fe.path, "want NS/IFACE or a list of them, got an empty list")
			ok = false
		}
		return out
	}
	ev.LinkDown = refs(EventLinkDown)
	ev.LinkUp = refs(EventLinkUp)
	if he, found := f[EventHeal]; found {
		switch {
		case he.v.Kind == yaml.ScalarNode && he.v.ShortTag() == "!!str":
			ev.Heal = []string{he.v.Value}
		case he.v.Kind == yaml.SequenceNode && len(he.v.Content) > 0:
			for _, it := range p.stringList(he, "a partition's name") {
				ev.Heal = append(ev.Heal, it.value)
			}
		default:
			p.errorf(pos(he.v), he.path, "want a partition's name or a list of them, got %s", describe(he.v))
			ok = false
		}
	}
	if pe, found := f[EventPartition]; found {
		ev.Partition = p.parseEventPartition(pe)
		ok = ok && ev.Partition != nil
	}
	if ie, found := f[EventImpair]; found {
		entries := p.entries(ie.v, ie.path)
		if len(entries) == 0 {
			p.errorf(pos(ie.v), ie.path, "want a mapping of interfaces to impairments, such as {n1/eth0: {loss: 20%%}}")
			ok = false
		}
		for _, e := range entries {
			ns, link, good := strings.Cut(e.key, "/")
			if !good || ns == "" || link == "" || strings.Contains(link, "/") {
				p.errorf(pos(e.k), e.path, "want NS/IFACE (host/IFACE for a bridge port or a host-side veth end), got %q", e.key)
				ok = false
				continue
			}
			block, bad := p.parseImpairBlock(e, ns, link)
			if bad {
				ok = false
				continue
			}
			ev.Impair = append(ev.Impair, InterfaceImpair{Interface: e.key, Impair: block.Impair, Pos: pos(e.k)})
			p.eventImpairs = append(p.eventImpairs, pendingImpair{event: ev, index: len(ev.Impair) - 1, block: block})
		}
	}
	if !ok {
		return nil
	}
	if ev.Kind() == "" {
		p.errorf(pos(n), path, "want exactly one of link-down, link-up, partition, heal, impair")
		return nil
	}
	return ev
}

// parseEventPartition reads a partition event's {a, b, one-way, name}.
func (p *parser) parseEventPartition(e entry) *PartitionSpec {
	if e.v.Kind != yaml.MappingNode {
		p.errorf(pos(e.v), e.path, "want a mapping such as {a: [n1], b: [n2, n3]}, got %s", describe(e.v))
		return nil
	}
	f := p.fields(e.v, e.path, "event-partition")
	pt := &PartitionSpec{}
	ok := len(f) == len(e.v.Content)/2
	for _, g := range []struct {
		key string
		to  *[]string
	}{{"a", &pt.A}, {"b", &pt.B}} {
		fe, found := f[g.key]
		if !found {
			p.errorf(pos(e.v), join(e.path, g.key), "required: a list of namespaces, such as %s: [n1]", g.key)
			ok = false
			continue
		}
		if fe.v.Kind == yaml.ScalarNode && fe.v.ShortTag() == "!!str" {
			*g.to = []string{fe.v.Value}
			continue
		}
		for _, it := range p.stringList(fe, "a namespace") {
			*g.to = append(*g.to, it.value)
		}
	}
	if fe, found := f["one-way"]; found {
		v, good := p.boolean(fe)
		ok = ok && good
		pt.OneWay = v
	}
	if fe, found := f["name"]; found {
		v, good := p.str(fe)
		ok = ok && good
		pt.Name = v
	}
	if !ok {
		return nil
	}
	return pt
}

// duration reads a duration written as Go writes one (10s, 1.5s, 250ms,
// 1m30s), or 0.
func (p *parser) duration(e entry) (time.Duration, bool) {
	if e.v.Kind == yaml.ScalarNode && e.v.ShortTag() == "!!int" && e.v.Value == "0" {
		return 0, true
	}
	if e.v.Kind != yaml.ScalarNode || e.v.ShortTag() != "!!str" {
		p.errorf(pos(e.v), e.path, "want a duration such as 10s or 250ms, got %s", describe(e.v))
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(e.v.Value))
	if err != nil {
		p.errorf(pos(e.v), e.path, "invalid duration %q: want a number and a unit, such as 10s, 250ms or 1m30s", e.v.Value)
		return 0, false
	}
	if d < 0 {
		p.errorf(pos(e.v), e.path, "%s is negative", e.v.Value)
		return 0, false
	}
	return d, true
}

// mergeEventImpairs makes each impair event's blocks whole: the file's
// impairment of the interface with the fields the event writes replaced.
func (p *parser) mergeEventImpairs() {
	for _, pi := range p.eventImpairs {
		ii := &pi.event.Impair[pi.index]
		ns, link, _ := strings.Cut(ii.Interface, "/")
		im := p.lab.FileImpair(ns, link)
		b := pi.block.Impair
		for field := range pi.block.FieldPos {
			switch field {
			case "rate":
				im.Rate = b.Rate
			case "delay":
				im.Delay = b.Delay
			case "jitter":
				im.Jitter = b.Jitter
			case "loss":
				im.Loss = b.Loss
			case "duplicate":
				im.Duplicate = b.Duplicate
			case "corrupt":
				im.Corrupt = b.Corrupt
			case "reorder":
				im.Reorder = b.Reorder
			case "limit":
				im.Limit = b.Limit
			default:
				panic(fmt.Sprintf("topology: impair field %q has no merge", field))
			}
		}
		ii.Impair = im
	}
}
