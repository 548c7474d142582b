package topology

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parseFiles reads a namespace's files: (path → content, or
// {content|from, mode}).
func (p *parser) parseFiles(e entry, ns *Namespace) {
	for _, fe := range p.entries(e.v, e.path) {
		f := File{Path: fe.key, Mode: 0o644, Pos: pos(fe.k), Key: fe.path}
		if msg := checkViewPath(fe.key); msg != "" {
			p.errorf(pos(fe.k), fe.path, "%s", msg)
			continue
		}
		switch {
		case fe.v.Kind == yaml.ScalarNode && fe.v.ShortTag() == "!!str":
			f.Content = []byte(fe.v.Value)
		case fe.v.Kind == yaml.ScalarNode && isNull(fe.v):
			f.Content = []byte{}
		case fe.v.Kind == yaml.MappingNode:
			ff := p.fields(fe.v, fe.path, "file")
			ce, hasContent := ff["content"]
			fromE, hasFrom := ff["from"]
			switch {
			case hasContent == hasFrom:
				p.errorf(pos(fe.v), fe.path, "want content: TEXT or from: FILE (a file beside the lab's), one of them")
				continue
			case hasContent:
				if s, ok := p.str(ce); ok {
					f.Content = []byte(s)
				}
			default:
				if s, ok := p.str(fromE); ok {
					if msg := checkFrom(s); msg != "" {
						p.errorf(pos(fromE.v), fromE.path, "%s", msg)
						continue
					}
					f.From, f.FromPos = s, pos(fromE.v)
				}
			}
			if me, ok := ff["mode"]; ok {
				m, ok := p.integer(me, 0, 0o7777)
				if !ok {
					continue
				}
				f.Mode = fs.FileMode(m)
			}
		default:
			p.errorf(pos(fe.v), fe.path, "want the file's text, or a mapping such as {from: r1/frr.conf}, got %s", describe(fe.v))
			continue
		}
		if f.Content == nil && f.From == "" {
			continue // an error was reported
		}
		ns.Files = append(ns.Files, f)
	}
}

// parseDirs reads a namespace's private writable directories.
func (p *parser) parseDirs(e entry, ns *Namespace) {
	for _, item := range p.stringList(e, "a directory such as /run/frr") {
		if msg := checkViewPath(item.value); msg != "" {
			p.errorf(item.pos, item.path, "%s", msg)
			continue
		}
		ns.Dirs = append(ns.Dirs, Dir{Path: item.value, Pos: item.pos})
	}
}

// checkViewPath returns why a path cannot be placed in a namespace's view,
// or "": it must be absolute and clean, and not in the kernel's file
// systems (/proc, /sys, /dev) or netlab's own state.
func checkViewPath(s string) string {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%q: want an absolute path such as /etc/frr/frr.conf", s)
	case path.Clean(s) != s:
		return fmt.Sprintf("%q: write it as %s", s, path.Clean(s))
	case s == "/":
		return "/ is the whole file system"
	}
	for _, top := range []string{"/proc", "/sys", "/dev", "/run/netns", "/run/netlab"} {
		if s == top || strings.HasPrefix(s, top+"/") {
			return fmt.Sprintf("%s: netlab places nothing under %s", s, top)
		}
	}
	return ""
}

// checkFrom returns why a side file's path is unusable, or "": relative to
// the lab file's directory, and staying in it.
func checkFrom(s string) string {
	switch {
	case s == "" || strings.HasPrefix(s, "/"):
		return fmt.Sprintf("from: %q: want a path relative to the lab file's directory, such as r1/frr.conf", s)
	case path.Clean(s) != s || s == ".." || strings.HasPrefix(s, "../"):
		return fmt.Sprintf("from: %q: want a clean path inside the lab file's directory", s)
	}
	return ""
}

// Service defaults.
const (
	DefaultReadyTimeout = 30 * time.Second
	RestartNo           = "no"
	RestartOnFailure    = "on-failure"
	RestartAlways       = "always"
)

// parseService reads one service of a namespace.
func (p *parser) parseService(e entry, ns *Namespace) *Service {
	s := &Service{Name: e.key, NS: ns.Name, Timeout: DefaultReadyTimeout, Restart: RestartOnFailure, Pos: pos(e.k), Path: e.path}
	if msg := checkServiceName(e.key); msg != "" {
		p.errorf(pos(e.k), e.path, "%s", msg)
		return nil
	}
	if e.v.Kind == yaml.SequenceNode || (e.v.Kind == yaml.ScalarNode && e.v.ShortTag() == "!!str") {
		// The short form: the command alone.
		s.Command = p.command(e)
		if s.Command == nil {
			return nil
		}
		return s
	}
	f := p.fields(e.v, e.path, "service")
	ce, ok := f["command"]
	if !ok {
		p.errorf(pos(e.v), e.path, "required: command, such as command: [/usr/lib/frr/zebra, -f, /etc/frr/zebra.conf]")
		return nil
	}
	if s.Command = p.command(ce); s.Command == nil {
		return nil
	}
	if ee, ok := f["env"]; ok {
		for _, kv := range p.entries(ee.v, ee.path) {
			if !validEnvName(kv.key) {
				p.errorf(pos(kv.k), kv.path, "%q is not an environment variable name", kv.key)
				continue
			}
			if v, ok := p.str(kv); ok {
				s.Env = append(s.Env, kv.key+"="+v)
			}
		}
		slices.Sort(s.Env)
	}
	if de, ok := f["dir"]; ok {
		if v, ok := p.str(de); ok {
			if !strings.HasPrefix(v, "/") || path.Clean(v) != v {
				p.errorf(pos(de.v), de.path, "%q: want an absolute, clean directory", v)
			} else {
				s.Dir = v
			}
		}
	}
	if ue, ok := f["user"]; ok {
		switch {
		case ue.v.Kind == yaml.ScalarNode && ue.v.ShortTag() == "!!int":
			if uid, ok := p.integer(ue, 0, 1<<31-1); ok {
				s.User = fmt.Sprint(uid)
			}
		default:
			if v, ok := p.str(ue); ok {
				if v == "" || strings.ContainsAny(v, ": \t\n/") {
					p.errorf(pos(ue.v), ue.path, "%q is not a user name", v)
				} else {
					s.User = v
				}
			}
		}
	}
	if ae, ok := f["after"]; ok {
		for _, item := range p.stringList(ae, "a service, as NAME or NAMESPACE/NAME") {
			s.After = append(s.After, Ref{Name: item.value, Pos: item.pos, Path: item.path})
		}
	}
	if re, ok := f["ready"]; ok {
		s.Ready = p.parseReady(re)
	}
	if te, ok := f["timeout"]; ok {
		if v, ok := p.str(te); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > time.Hour {
				p.errorf(pos(te.v), te.path, "%q: want a duration such as 30s, at most 1h", v)
			} else {
				s.Timeout = d
			}
		}
	}
	if re, ok := f["restart"]; ok {
		if v, ok := p.oneOf(re, RestartNo, RestartOnFailure, RestartAlways); ok {
			s.Restart = v
		}
	}
	return s
}

// command reads a command: a list of words, or one string split on
// blanks (no shell: a shell is written as [sh, -c, "..."]).
func (p *parser) command(e entry) []string {
	var argv []string
	if e.v.Kind == yaml.ScalarNode && e.v.ShortTag() == "!!str" {
		argv = strings.Fields(e.v.Value)
	} else {
		for _, item := range p.stringList(e, "a word of the command") {
			argv = append(argv, item.value)
		}
	}
	if len(argv) == 0 || argv[0] == "" {
		p.errorf(pos(e.v), e.path, "want a command, such as [/usr/sbin/dnsmasq, --keep-in-foreground]")
		return nil
	}
	return argv
}

// parseReady reads a readiness probe: exactly one of tcp, udp, command,
// log.
func (p *parser) parseReady(e entry) *Ready {
	f := p.fields(e.v, e.path, "ready")
	if len(f) != 1 {
		if len(f) > 1 || e.v.Kind == yaml.MappingNode && len(e.v.Content) == 0 {
			p.errorf(pos(e.v), e.path, "want one probe: tcp: PORT, udp: PORT, command: [...] or log: REGEXP")
		}
		return nil
	}
	r := &Ready{Pos: pos(e.v)}
	for key, fe := range f {
		switch key {
		case "tcp", "udp":
			port, ok := p.integer(fe, 1, 65535)
			if !ok {
				return nil
			}
			if key == "tcp" {
				r.TCP = port
			} else {
				r.UDP = port
			}
		case "command":
			if r.Command = p.command(fe); r.Command == nil {
				return nil
			}
		case "log":
			v, ok := p.str(fe)
			if !ok {
				return nil
			}
			if _, err := regexp.Compile(v); err != nil || v == "" {
				p.errorf(pos(fe.v), fe.path, "%q: want a regular expression (Go syntax) a line of the log matches", v)
				return nil
			}
			r.Log = v
		}
	}
	return r
}

// checkServiceName keeps service names usable in file names and messages.
func checkServiceName(s string) string {
	if s == "" || len(s) > 32 || !allIn(s[:1], "abcdefghijklmnopqrstuvwxyz0123456789") || !allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-.") {
		return fmt.Sprintf("service name %q: use 1 to 32 of a-z, 0-9, _, - and ., starting with a letter or digit", s)
	}
	return ""
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	return allIn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
}

// checkServices resolves each service's after: (NAME in its namespace, or
// NS/NAME) and refuses cycles, naming the places.
func (p *parser) checkServices() {
	byKey := map[string]*Service{}
	for _, ns := range p.lab.Namespaces {
		for _, s := range ns.Services {
			byKey[s.NS+"/"+s.Name] = s
		}
	}
	for _, ns := range p.lab.Namespaces {
		for _, s := range ns.Services {
			for i, ref := range s.After {
				k := ref.Name
				if !strings.Contains(k, "/") {
					k = s.NS + "/" + k
				}
				if byKey[k] == nil {
					p.errorf(ref.Pos, ref.Path, "no service %s in the lab", k)
					continue
				}
				s.After[i].Name = k
			}
		}
	}
	// A cycle: depth-first search with colours.
	const (
		white = iota
		grey
		black
	)
	colour := map[string]int{}
	var visit func(k string, trail []string) bool
	visit = func(k string, trail []string) bool {
		switch colour[k] {
		case grey:
			s := byKey[k]
			p.errorf(s.Pos, s.Path, "services wait for each other in a cycle: %s", strings.Join(append(trail, k), " → "))
			return false
		case black:
			return true
		}
		colour[k] = grey
		for _, ref := range byKey[k].After {
			if byKey[ref.Name] != nil && !visit(ref.Name, append(trail, k)) {
				return false
			}
		}
		colour[k] = black
		return true
	}
	for _, k := range sortedKeys(byKey) {
		if colour[k] == white && !visit(k, nil) {
			return
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
