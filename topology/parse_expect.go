package topology

import (
	"gopkg.in/yaml.v3"
)

// parseExpectations reads the expect: list; names are resolved in
// checkExpectations once every namespace and bridge is known.
func (p *parser) parseExpectations(e entry) {
	for i, item := range p.list(e) {
		path := index(e.path, i)
		x := Expect{Reachable: true, Pos: pos(item), Path: path}
		if item.Kind != yaml.MappingNode {
			p.errorf(pos(item), path, "want a mapping such as {from: blue, to: red, ping: true}, got %s", describe(item))
			continue
		}
		f := p.fields(item, path, "expect")
		ok := len(f) == len(item.Content)/2
		for _, k := range []string{"from", "to"} {
			fe, found := f[k]
			if !found {
				p.errorf(pos(item), join(path, k), "required: a namespace name, or for to: also an address")
				ok = false
				continue
			}
			v, good := p.str(fe)
			if !good {
				ok = false
			}
			if k == "from" {
				x.From, x.fromPos = v, pos(fe.v)
			} else {
				x.To, x.toPos = v, pos(fe.v)
			}
		}
		kinds := 0
		if pe, found := f["ping"]; found {
			kinds++
			if pe.v.Kind != yaml.ScalarNode || pe.v.ShortTag() != "!!bool" || pe.v.Value != "true" {
				p.errorf(pos(pe.v), pe.path, "want ping: true (use reachable: false to expect no reply)")
				ok = false
			}
			x.Ping = true
		}
		if te, found := f["tcp"]; found {
			kinds++
			x.TCP, _ = p.integer(te, 1, 65535)
		}
		if ue, found := f["udp"]; found {
			kinds++
			x.UDP, _ = p.integer(ue, 1, 65535)
		}
		if kinds != 1 {
			p.errorf(pos(item), path, "want exactly one of ping: true, tcp: PORT, udp: PORT")
			ok = false
		}
		if re, found := f["reachable"]; found {
			if re.v.Kind != yaml.ScalarNode || re.v.ShortTag() != "!!bool" {
				p.errorf(pos(re.v), re.path, "want true or false, got %s", describe(re.v))
				ok = false
			} else {
				x.Reachable = re.v.Value == "true"
			}
		}
		if ok {
			p.lab.Expect = append(p.lab.Expect, x)
		}
	}
}
