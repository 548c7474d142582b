package topology

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// timelines writes the lab's timelines: the list of events alone when the
// timeline starts by hand (Parse's default), {start, events} otherwise.
func (f *formatter) timelines() *yaml.Node {
	m := newMap()
	for _, t := range f.lab.Timelines {
		events := ySeq()
		for i, e := range t.Events {
			events.Content = append(events.Content, f.event(t, i, e))
		}
		if t.Start == StartUp {
			v := newMap()
			v.add("start", yStr(StartUp))
			v.add("events", events)
			m.add(t.Name, v.n)
			continue
		}
		m.add(t.Name, events)
	}
	return m.n
}

// event writes one event: its times, then its action. A partition's name
// is written unless it is the one Parse gives (TIMELINE-N); an impairment
// as the fields that differ from the file's block of the interface, or are
// set (Parse makes the event's fields whole over the file's).
func (f *formatter) event(t *Timeline, i int, e *Event) *yaml.Node {
	m := newMap()
	if e.At != 0 {
		m.add("at", yStr(formatDuration(e.At)))
	}
	if e.Every != 0 {
		m.add("every", yStr(formatDuration(e.Every)))
	}
	if e.Count != 0 {
		m.add("count", yInt(e.Count))
	}
	if e.For != 0 {
		m.add("for", yStr(formatDuration(e.For)))
	}
	refs := func(key string, list []string) {
		switch len(list) {
		case 0:
		case 1:
			m.add(key, yStr(list[0]))
		default:
			m.add(key, yStrs(list))
		}
	}
	refs(EventLinkDown, e.LinkDown)
	refs(EventLinkUp, e.LinkUp)
	if p := e.Partition; p != nil {
		v := newMap()
		v.add("a", yStrs(p.A))
		v.add("b", yStrs(p.B))
		if p.OneWay {
			v.add("one-way", yBool(true))
		}
		if p.Name != "" && p.Name != fmt.Sprintf("%s-%d", t.Name, i+1) {
			v.add("name", yStr(p.Name))
		}
		m.add(EventPartition, v.n)
	}
	refs(EventHeal, e.Heal)
	if len(e.Impair) > 0 {
		v := newMap()
		for _, ii := range e.Impair {
			v.add(ii.Interface, impairOver(ii.Impair, f.fileImpair(ii.Interface)))
		}
		m.add(EventImpair, v.n)
	}
	return m.n
}

// fileImpair is the file's impairment of "ns/iface".
func (f *formatter) fileImpair(k string) Impair {
	for _, im := range f.lab.Impairments {
		if im.NS+"/"+im.Link == k {
			return im.Impair
		}
	}
	return Impair{}
}

// impairOver writes the fields of im that are set, or differ from the
// file's (a percentage or a duration the event sets to 0).
func impairOver(im, file Impair) *yaml.Node {
	m := newMap()
	if im.Rate != 0 {
		m.add("rate", yStr(FormatRate(im.Rate)))
	}
	for _, d := range []struct {
		key     string
		v, file time.Duration
	}{{"delay", im.Delay, file.Delay}, {"jitter", im.Jitter, file.Jitter}} {
		if d.v != 0 || d.v != d.file {
			m.add(d.key, yStr(formatDuration(d.v)))
		}
	}
	for _, p := range []struct {
		key     string
		v, file float64
	}{{"loss", im.Loss, file.Loss}, {"duplicate", im.Duplicate, file.Duplicate}, {"corrupt", im.Corrupt, file.Corrupt}, {"reorder", im.Reorder, file.Reorder}} {
		if p.v != 0 || p.v != p.file {
			m.add(p.key, yStr(FormatPercent(p.v)))
		}
	}
	if im.Limit != 0 {
		m.add("limit", yInt(im.Limit))
	}
	return m.n
}
