package topology

import (
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// parseTUN reads a TUN device: a reflector, a TUN<->UDP bridge, or a plain
// persistent TUN for the user's own program.
func (p *parser) parseTUN(e entry, ns string) *TUN {
	t := &TUN{Name: e.key, NS: ns, Pos: pos(e.k), Path: e.path}
	if msg := checkIfName(e.key, "tun"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	}
	f := p.fields(e.v, e.path, "tun")
	if re, ok := f["reflector"]; ok {
		t.Reflector, _ = p.boolean(re)
	}
	if ue, ok := f["udp"]; ok {
		t.UDP = &UDPBridge{Pos: pos(ue.k)}
		uf := p.fields(ue.v, ue.path, "udp")
		for _, k := range []string{"listen", "send"} {
			ke, found := uf[k]
			if !found {
				p.errorf(pos(ue.v), join(ue.path, k), "required: an address and port such as 127.0.0.1:12345")
				continue
			}
			s, good := p.str(ke)
			if !good {
				continue
			}
			ap, err := netip.ParseAddrPort(s)
			if err != nil || ap.Port() == 0 {
				p.errorf(pos(ke.v), ke.path, "want an address and port such as 127.0.0.1:12345 or [::1]:12345, got %q", s)
				continue
			}
			if k == "listen" {
				t.UDP.Listen = ap
			} else {
				t.UDP.Send = ap
			}
		}
		if ne, found := uf["namespace"]; found {
			if s, good := p.str(ne); good {
				t.UDP.Namespace, t.UDP.nsPos = s, pos(ne.v)
			}
		}
		if t.Reflector {
			p.errorf(pos(ue.k), ue.path, "a TUN is either a reflector or a UDP bridge, not both")
		}
	}
	if qe, ok := f["queues"]; ok {
		t.Queues, _ = p.integer(qe, 1, MaxQueues)
		if !t.Reflector {
			p.errorf(pos(qe.k), qe.path, "queues: only reflectors read a TUN with several queues")
		}
	}
	if ce, ok := f["cpus"]; ok {
		t.CPUs, t.CPUsPos = p.cpus(ce), pos(ce.v)
		if !t.Supervised() {
			p.errorf(pos(ce.k), ce.path, "cpus: only a reflector or a UDP bridge runs a process to place on CPUs")
		}
	}
	if me, ok := f["mtu"]; ok {
		t.MTU, _ = p.integer(me, minMTU, maxMTU)
	}
	if ae, ok := f["addresses"]; ok {
		t.Addresses, _, _ = p.addresses(ae)
	}
	if re, ok := f["routes"]; ok {
		for _, it := range p.stringList(re, "a prefix routed to the device, such as 10.200.0.0/16") {
			pfx, msg := parseDestination(it.value)
			if msg != "" {
				p.errorf(it.pos, it.path, "%s", strings.Replace(msg, ", or default", "", 1))
				continue
			}
			t.Routes = append(t.Routes, pfx)
		}
	}
	if le, ok := f["log"]; ok {
		t.Log, _ = p.boolean(le)
		if !t.Reflector {
			p.errorf(pos(le.k), le.path, "log: only reflectors log packets")
		}
	}
	return t
}

// cpus reads a list of CPU numbers, each once, and returns them sorted.
func (p *parser) cpus(e entry) []int {
	items := p.list(e)
	if len(items) == 0 {
		if e.v.Kind == yaml.SequenceNode || isNull(e.v) {
			p.errorf(pos(e.v), e.path, "want at least one CPU number, such as [1]")
		}
		return nil
	}
	var out []int
	seen := map[int]bool{}
	for i, item := range items {
		path := index(e.path, i)
		c, ok := p.integer(entry{k: item, v: item, path: path}, 0, MaxCPU)
		if !ok {
			continue
		}
		if seen[c] {
			p.errorf(pos(item), path, "CPU %d is listed twice", c)
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// parseTAP reads a persistent TAP device that a user's program attaches to.
func (p *parser) parseTAP(e entry, ns string) *TAP {
	t := &TAP{Name: e.key, NS: ns, Owner: -1, Group: -1, Pos: pos(e.k), Path: e.path}
	if msg := checkIfName(e.key, "tap"); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
	}
	f := p.fields(e.v, e.path, "tap")
	if oe, ok := f["owner"]; ok {
		t.Owner, _ = p.integer(oe, 0, 1<<31-1)
	}
	if ge, ok := f["group"]; ok {
		t.Group, _ = p.integer(ge, 0, 1<<31-1)
	}
	if me, ok := f["mac"]; ok {
		if s, good := p.str(me); good {
			mac, msg := parseMAC(s)
			if msg != "" {
				p.errorf(pos(me.v), me.path, "%s", msg)
			} else {
				t.MAC = mac
			}
		}
	}
	if qe, ok := f["multi-queue"]; ok {
		t.MultiQueue, _ = p.boolean(qe)
	}
	if ve, ok := f["vnet-hdr"]; ok {
		t.VnetHdr, _ = p.boolean(ve)
	}
	if me, ok := f["mtu"]; ok {
		t.MTU, _ = p.integer(me, minMTU, maxMTU)
	}
	if ae, ok := f["addresses"]; ok {
		t.Addresses, _, _ = p.addresses(ae)
	}
	if ie, ok := f["impair"]; ok {
		p.addImpair(p.parseImpair(ie, ns, t.Name))
	}
	return t
}
