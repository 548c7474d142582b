package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// HostsFile is the lab's hosts file: localhost, then each namespace's name
// as the file writes it (without the lab's prefix) with the addresses of
// its interfaces and lo, then NS-IFACE for each interface's, and each
// bridge's name with its addresses. Every namespace's programs see it as
// /etc/hosts, so `ping red` works in blue; nothing is added to the
// machine's resolver.
func HostsFile(lab *topology.Lab) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&b, "# lab %s, written by netlab\n", lab.Name)
	plain := func(name string) string { return strings.TrimPrefix(name, lab.Prefix) }
	line := func(a netip.Addr, names ...string) {
		fmt.Fprintf(&b, "%s\t%s\n", a, strings.Join(names, " "))
	}
	for _, ns := range lab.Namespaces {
		name := plain(ns.Name)
		for _, a := range ns.Loopback {
			line(a.Addr(), name, name+"-lo")
		}
		for _, ifc := range ns.Interfaces {
			for _, a := range ifc.Addresses {
				if a.Addr().IsLinkLocalUnicast() {
					continue
				}
				line(a.Addr(), name, name+"-"+ifc.Name)
			}
		}
		for _, t := range ns.TUNs {
			for _, a := range t.Addresses {
				line(a.Addr(), name, name+"-"+t.Name)
			}
		}
		for _, t := range ns.TAPs {
			for _, a := range t.Addresses {
				line(a.Addr(), name, name+"-"+t.Name)
			}
		}
	}
	for _, br := range lab.Bridges {
		for _, a := range br.Addresses {
			line(a.Addr(), plain(br.Name))
		}
	}
	return b.Bytes()
}

// viewOf is a namespace's wanted view: its files, its directories, and
// their hash ("" for none).
func viewOf(ns *topology.Namespace) ([]state.ViewFile, []string, string) {
	if len(ns.Files) == 0 && len(ns.Dirs) == 0 {
		return nil, nil, ""
	}
	var files []state.ViewFile
	for _, f := range ns.Files {
		files = append(files, state.ViewFile{Path: f.Path, Mode: f.Mode, Content: f.Content})
	}
	var dirs []string
	for _, d := range ns.Dirs {
		dirs = append(dirs, d.Path)
	}
	return files, dirs, state.ViewHash(files, dirs)
}

// hostsAndViews writes the lab's hosts file and each namespace's view where
// they differ from what is written.
func (p *planner) hostsAndViews() {
	hosts := HostsFile(p.lab)
	if h := state.ContentHash(hosts); p.snap.HostsHash != h {
		p.emit(SetHosts{Lines: bytes.Count(hosts, []byte("\n")), Hash: h, Content: hosts})
	}
	for _, ns := range p.lab.Namespaces {
		files, dirs, hash := viewOf(ns)
		have := ""
		if o := p.snap.Namespaces[ns.Name]; o != nil {
			have = o.ViewHash
		}
		if have != hash {
			p.emit(SetView{NS: ns.Name, Files: files, Dirs: dirs, Hash: hash})
		}
	}
}

// startOf is the start-service of a service of the file.
func startOf(s *topology.Service, ns *topology.Namespace) StartService {
	st := StartService{NS: s.NS, Name: s.Name, Program: s.Command, Env: s.Env, Dir: s.Dir, User: s.User,
		Restart: s.Restart, Timeout: s.Timeout}
	if r := s.Ready; r != nil {
		st.Ready = &Ready{TCP: r.TCP, UDP: r.UDP, Command: r.Command, Log: r.Log}
	}
	_, _, view := viewOf(ns)
	b, _ := json.Marshal(struct {
		S    StartService
		View string
	}{st, view})
	sum := sha256.Sum256(b)
	st.Hash = hex.EncodeToString(sum[:])[:16]
	return st
}

// services starts the file's services that do not run as the file says: in
// the order their after: sets (each waits for those before it to be
// ready), otherwise in file order.
func (p *planner) services() {
	type item struct {
		s  *topology.Service
		ns *topology.Namespace
	}
	byKey := map[string]item{}
	var order []string
	for _, ns := range p.lab.Namespaces {
		for _, s := range ns.Services {
			k := s.NS + "/" + s.Name
			byKey[k] = item{s, ns}
			order = append(order, k)
		}
	}
	done := map[string]bool{}
	var visit func(k string)
	visit = func(k string) {
		if done[k] {
			return
		}
		done[k] = true
		it := byKey[k]
		for _, ref := range it.s.After {
			if _, ok := byKey[ref.Name]; ok {
				visit(ref.Name)
			}
		}
		want := startOf(it.s, it.ns)
		var have *state.Service
		if o := p.snap.Namespaces[it.s.NS]; o != nil {
			have = o.Services[it.s.Name]
		}
		switch {
		case have == nil:
		case have.Supervisor == 0:
			want.Why = "it was not running"
			if have.Exit != "" {
				want.Why = "its program had " + have.Exit
			}
		case have.Hash != want.Hash:
			want.Why = "what it runs changed"
		default:
			return // runs as the file says
		}
		p.emit(want)
	}
	for _, k := range order {
		visit(k)
	}
}

// serviceStops stops the services of the lab's namespaces that the file no
// longer has (or whose namespace goes), and forgets those that ended.
func (p *planner) serviceStops() {
	for _, nsName := range state.SortedNames(p.snap.Namespaces) {
		o := p.snap.Namespaces[nsName]
		ns := p.lab.Namespace(nsName)
		for _, name := range state.SortedNames(o.Services) {
			if ns != nil && !ns.IsHost() && slices.ContainsFunc(ns.Services, func(s *topology.Service) bool { return s.Name == name }) {
				continue
			}
			p.emit(StopService{NS: nsName, Name: name})
		}
	}
}
