package plan

import (
	"net/netip"
	"strings"
	"testing"
)

const servicesLab = `
name: svc
bridges:
  br0: {type: linux, addresses: [10.6.0.254/24]}
namespaces:
  r1:
    interfaces:
      eth0: {peer: br0/p1, addresses: [10.6.0.1/24, "fd00:6::1/64"]}
      lo: {addresses: [10.255.0.1/32]}
    files:
      /etc/frr/zebra.conf: "hostname r1\n"
    dirs: [/run/frr]
    services:
      ospfd: {command: [/usr/lib/frr/ospfd], after: [zebra], ready: {log: "OSPF"}}
      zebra: {command: [/usr/lib/frr/zebra], ready: {command: [test, -S, /run/frr/zserv.api]}}
  h1:
    interfaces:
      eth0: {peer: br0/ph, addresses: [10.6.0.9/24]}
    services:
      web: {command: "python3 -m http.server 80", after: [r1/ospfd], ready: {tcp: 80}, restart: always, timeout: 5s}
`

// The hosts file names every namespace as the file does (the prefix left
// out) and each interface as NS-IFACE, lo's addresses too, and bridges.
func TestHostsFile(t *testing.T) {
	lab := parse(t, "svc.yaml", servicesLab)
	got := string(HostsFile(lab))
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n",
		"10.255.0.1\tr1 r1-lo\n",
		"10.6.0.1\tr1 r1-eth0\n",
		"fd00:6::1\tr1 r1-eth0\n",
		"10.6.0.9\th1 h1-eth0\n",
		"10.6.0.254\tbr0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, got)
		}
	}
}

// Services start in the order their after: says, each once; a second plan
// is empty; a service whose program ended, or whose namespace's files
// changed, is started again with the reason; one the file drops is stopped.
func TestServicesPlan(t *testing.T) {
	lab := parse(t, "svc.yaml", servicesLab)
	m := newMachine()
	p := m.converge(t, lab)
	var starts []string
	for _, a := range p {
		if s, ok := a.Step.(StartService); ok {
			starts = append(starts, s.NS+"/"+s.Name)
		}
	}
	if strings.Join(starts, " ") != "r1/zebra r1/ospfd h1/web" {
		t.Errorf("services start in the order %q, want r1/zebra r1/ospfd h1/web", starts)
	}
	if lo := m.link(t, "r1", "lo"); len(lo.Addrs) != 1 || lo.Addrs[0] != netip.MustParsePrefix("10.255.0.1/32") {
		t.Errorf("r1's lo has %v", lo.Addrs)
	}
	golden(t, "services.plan", p.String())

	// Its program ended and nothing restarts it: up does, and says why.
	zebra := m.ns(t, "r1").Services["zebra"]
	zebra.Supervisor, zebra.PID, zebra.Exit = 0, 0, "exited with status 1"
	p = m.converge(t, lab)
	if len(p) != 1 || !strings.Contains(p[0].String(), "netlab supervise r1/zebra:") || !strings.Contains(p[0].String(), "its program had exited with status 1") {
		t.Errorf("a dead service's plan:\n%s", p)
	}

	// A file of its namespace changed: the view is written and both of
	// r1's services start again; h1's stays.
	edited := parse(t, "svc.yaml", strings.Replace(servicesLab, `"hostname r1\n"`, `"hostname r1b\n"`, 1))
	p = m.converge(t, edited)
	var ops []string
	for _, a := range p {
		ops = append(ops, string(a.Op())+" "+a.Scope())
	}
	if strings.Join(ops, ", ") != "set-view ns:r1, start-service services, start-service services" {
		t.Errorf("a file edit plans %q", ops)
	}

	// A lo address a hand added goes; the kernel's stay.
	lo := m.link(t, "r1", "lo")
	lo.Addrs = append(lo.Addrs, netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("10.99.0.1/32"))
	p = m.converge(t, edited)
	if len(p) != 1 || p[0].String() != "ip -n r1 addr del 10.99.0.1/32 dev lo" {
		t.Errorf("a stray lo address plans:\n%s", p)
	}

	// The file drops a service: it is stopped.
	dropped := parse(t, "svc.yaml", strings.Replace(strings.Replace(servicesLab, `"hostname r1\n"`, `"hostname r1b\n"`, 1),
		`      web: {command: "python3 -m http.server 80", after: [r1/ospfd], ready: {tcp: 80}, restart: always, timeout: 5s}`, "", 1))
	p = m.converge(t, dropped)
	if len(p) != 1 || p[0].Op() != OpStopService {
		t.Errorf("a dropped service plans:\n%s", p)
	}

	// Down stops every service first.
	dp, _ := Down(DownInput{Lab: lab.Name, Journal: m.j, Snapshot: m.snap})
	if len(dp) < 2 || dp[0].Op() != OpStopService || dp[1].Op() != OpStopService {
		t.Errorf("down does not stop the services first:\n%s", dp)
	}
}
