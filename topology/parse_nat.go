package topology

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// parseNAT reads {source: 10.0.0.0/24, out: wan0}.
func (p *parser) parseNAT(n *yaml.Node, path string) (NATRule, bool) {
	r := NATRule{Pos: pos(n), Path: path}
	if n.Kind != yaml.MappingNode {
		p.errorf(pos(n), path, "want a mapping such as {source: 10.0.0.0/24, out: wan0}, got %s", describe(n))
		return r, false
	}
	f := p.fields(n, path, "nat")
	ok := len(f) == len(n.Content)/2
	if e, found := f["source"]; !found {
		p.errorf(pos(n), join(path, "source"), "required: the prefix to masquerade, such as 10.0.0.0/24")
		ok = false
	} else if s, good := p.str(e); !good {
		ok = false
	} else if pfx, msg := parseDestination(s); msg != "" {
		p.errorf(pos(e.v), e.path, "%s", strings.Replace(msg, ", or default", "", 1))
		ok = false
	} else {
		r.Source = pfx
	}
	if e, found := f["out"]; !found {
		p.errorf(pos(n), join(path, "out"), "required: the interface traffic leaves through, such as wan0")
		ok = false
	} else if s, good := p.str(e); !good {
		ok = false
	} else if msg := checkIfName(s, "interface"); msg != "" {
		p.errorf(pos(e.v), e.path, "%s", msg)
		ok = false
	} else {
		r.Out, r.outPos = s, pos(e.v)
	}
	return r, ok
}
