package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nat"
	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// DownResult says what Down removed and what it left alone.
type DownResult struct {
	Removed   []string `json:"removed"`
	LeftAlone []string `json:"left_alone,omitempty"`
	// NotRunning is set when nothing of the lab was found.
	NotRunning bool `json:"not_running"`
}

// graceTime is how long processes in a namespace get between SIGTERM and SIGKILL.
const graceTime = 2 * time.Second

// stopProcesses ends every process inside the namespace: a process keeps a
// namespace and its links alive after the namespace's name is deleted. It
// signals by PID only, and never itself.
func stopProcesses(ns string, log io.Writer) ([]int, error) {
	pids, err := namespace.Pids(ns)
	if err != nil {
		return nil, fmt.Errorf("find processes in namespace %s: %w", ns, err)
	}
	return stopPids(ns, pids, log)
}

// stopPids ends the given processes of a namespace: SIGTERM, SIGKILL after
// the grace period. Never this process.
func stopPids(ns string, pids []int, log io.Writer) ([]int, error) {
	var targets []int
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		targets = append(targets, pid)
		fmt.Fprintf(log, "stopping process %d (%s) in namespace %s\n", pid, proc.Name(pid), ns)
	}
	if left := proc.Stop(targets, graceTime); len(left) > 0 {
		return targets, fmt.Errorf("namespace %s: processes %v did not stop", ns, left)
	}
	return targets, nil
}

// alive is proc.Alive: the pids that still run.
func alive(pids []int) []int { return proc.Alive(pids) }

// Down removes everything of the lab, from the journal and the markers alone:
// no topology file is needed. It never removes an object that does not carry
// the lab's marker, and reports those it left alone. Errors are collected; it
// removes as much as it can.
func (e *Engine) Down(lab string) (*DownResult, error) {
	unlock, err := e.store.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()

	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if e.store.Exists(lab) {
		// Say so before anything stops: an up after a down killed midway
		// must not take a process told to stop for one that runs.
		j.DownAt = time.Now().UTC()
		if err := e.store.Save(j); err != nil {
			return nil, err
		}
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	if oc == nil && (len(j.Bridges) > 0 || e.privateDBExists()) {
		// The lab's bridges may sit in the database of a private OVS whose
		// daemons died: start it to remove them (and stop it again below).
		release, rerr := e.store.OVSUser()
		if rerr != nil {
			return nil, rerr
		}
		oc, err = e.connectOVS(true)
		release()
		if err != nil {
			return nil, err
		}
		for _, w := range oc.Warnings() {
			e.logf("warning: %s\n", w)
		}
	}
	s, err := e.newSession(lab, oc)
	if err != nil {
		return nil, err
	}
	defer s.close()

	res := &DownResult{}
	var errs []error
	removed := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		res.Removed = append(res.Removed, msg)
		fmt.Fprintf(e.log, "removed %s\n", msg)
		e.emit(Event{Kind: "removed", Lab: lab, Done: len(res.Removed), Action: msg})
	}
	leftAlone := func(format string, args ...any) {
		res.LeftAlone = append(res.LeftAlone, fmt.Sprintf(format, args...))
	}

	// A crash between creating a namespace's file and mounting it leaves a
	// plain file the journal names; it cannot be opened, only removed.
	if err := removeHalfCreated(j); err != nil {
		errs = append(errs, err)
	}
	// Namespaces: marked with the lab, or journaled and still empty (a crash
	// between creating and marking it).
	var doomed []string
	onMachine, err := namespace.List()
	if err != nil {
		return nil, err
	}
	for _, name := range onMachine {
		owner, links, err := s.marker(name)
		if err != nil {
			// Another lab's namespace may be half made while we look; only
			// one the journal names must be readable.
			if contains(j.Namespaces, name) {
				errs = append(errs, err)
			}
			continue
		}
		if links == nil {
			continue // gone meanwhile
		}
		journaled := contains(j.Namespaces, name)
		switch {
		case owner == lab:
			doomed = append(doomed, name)
		case journaled && owner == "" && len(links) == 1 && links[0] == "lo":
			doomed = append(doomed, name)
		case journaled:
			leftAlone("namespace %s (%s)", name, ownerText(owner))
		}
		s.forget(name)
	}

	// OVS: this lab's ports on other bridges, then this lab's bridges (their
	// ports go with them).
	foreignBridge := map[string]bool{}
	if oc != nil {
		bridges, err := oc.Observe()
		if err != nil {
			errs = append(errs, err)
		}
		for _, name := range state.SortedNames(bridges) {
			b := bridges[name]
			if b.Owner == lab {
				continue
			}
			var ports []string
			for _, pn := range state.SortedNames(b.Ports) {
				if b.Ports[pn].Owner == lab {
					ports = append(ports, pn)
				}
			}
			if len(ports) > 0 {
				if err := oc.DeletePorts(name, ports); err != nil {
					errs = append(errs, err)
				} else {
					removed("ovs ports %s from bridge %s", strings.Join(ports, ", "), name)
				}
			}
			foreignBridge[name] = true
			if contains(j.Bridges, name) {
				leftAlone("ovs bridge %s (%s)", name, ownerText(b.Owner))
			}
		}
		for _, name := range state.SortedNames(bridges) {
			if bridges[name].Owner != lab {
				continue
			}
			if err := oc.DeleteBridge(name, lab); err != nil {
				errs = append(errs, err)
				continue
			}
			removed("ovs bridge %s", name)
		}
	}

	// Supervised processes (reflectors, UDP bridges): they run in the host
	// namespace, so the namespace sweep below would not find them.
	if stopped, err := e.stopAllProcesses(lab, e.log); err != nil {
		errs = append(errs, err)
	} else {
		for _, p := range stopped {
			removed("netlab reflect on %s", p)
		}
	}

	// The user's interfaces the lab attached: given back as they were.
	for _, name := range state.SortedNames(j.External) {
		prev := j.External[name]
		if err := s.detachExternal(name, j); err != nil {
			errs = append(errs, err)
			continue
		}
		removed("external interface %s from bridge %s (restored, not deleted)", name, prev.Bridge)
	}

	// Processes first (one walk of /proc for all namespaces), then the
	// namespaces.
	pids, err := namespace.PidsIn(doomed)
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range doomed {
		if len(pids[name]) > 0 {
			if _, err := stopPids(name, pids[name], e.log); err != nil {
				errs = append(errs, err)
			}
		}
		if err := namespace.Delete(name); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", name, err))
			continue
		}
		removed("namespace %s", name)
	}

	// Host links with the lab's marker: veth ends (deleted explicitly: the
	// kernel removes them only when the namespace is finally freed) and Linux
	// bridges.
	host, err := s.observeNS(topology.Host, state.SortedNames(j.HostSysctls))
	if err != nil {
		return nil, err
	}
	hostNS, err := s.ns(topology.Host)
	if err != nil {
		return nil, err
	}
	for _, name := range state.SortedNames(host.Links) {
		l := host.Links[name]
		if l.Owner() == lab {
			if err := hostNS.DeleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed("interface %s", name)
		} else if contains(j.HostLinks, name) && l.Alias == "" && (l.Kind == state.KindVeth || l.Kind == state.KindVXLAN) {
			// Journaled, never marked: created by a run that died before
			// setting the alias (up checks no such link existed before).
			if err := hostNS.DeleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed("interface %s (unmarked, from an interrupted run)", name)
		} else if contains(j.Bridges, name) && l.Alias == "" && l.Kind == state.KindTuntap && !foreignBridge[name] {
			// The internal port of one of the lab's OVS bridges, left as a
			// TAP device by an ovs-vswitchd that died without cleaning up
			// (the bridge itself is gone from the database).
			if err := hostNS.DeleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed("interface %s (left by an Open vSwitch that died)", name)
		} else if contains(j.HostLinks, name) && l.Owner() != "" {
			leftAlone("interface %s (%s)", name, ownerText(l.Owner()))
		}
	}

	// The lab's NAT table in the host (lab namespaces take theirs along).
	if _, exists, err := nat.Observe(topology.Host, lab); err != nil {
		errs = append(errs, err)
	} else if exists {
		if err := nat.Delete(topology.Host, lab); err != nil {
			errs = append(errs, err)
		} else {
			removed("nftables table inet %s in the host", nat.TableName(lab))
		}
	}

	// Host sysctls back to what they were.
	for _, key := range state.SortedNames(j.HostSysctls) {
		prev := j.HostSysctls[key]
		if cur := host.Sysctls[key]; cur == prev {
			continue
		}
		if err := hostNS.SetSysctl(key, prev); err != nil {
			errs = append(errs, err)
			continue
		}
		removed("host sysctl %s (restored to %s)", key, prev)
	}

	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	if err := e.store.Remove(lab); err != nil {
		return res, err
	}
	e.store.RemoveLock(lab)
	// netlab's private OVS goes when no lab has a bridge in it and no other
	// netlab process is using it.
	if release, idle, err := e.store.OVSIdle(); err != nil {
		return res, err
	} else if idle {
		stopped, err := ovs.StopPrivateIfIdle(e.ovsOpts...)
		release()
		if err != nil {
			return res, err
		}
		if stopped {
			removed("private Open vSwitch (no lab uses it)")
			// A daemon that died without cleaning up left its datapath's
			// device; once it is stopped for good, nothing uses it.
			if h, err := s.ns(topology.Host); err == nil && !ovs.VSwitchdRunning() {
				if o, err := h.Observe(nil); err == nil {
					if l := o.Links["ovs-netdev"]; l != nil && l.Kind == state.KindTuntap && l.Alias == "" {
						if err := h.DeleteLink("ovs-netdev"); err != nil {
							return res, err
						}
						removed("interface ovs-netdev (left by netlab's private Open vSwitch)")
					}
				}
			}
		}
	}
	res.NotRunning = len(res.Removed) == 0 && j.Empty()
	return res, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func onlyLoopback(o *state.Namespace) bool {
	for name := range o.Links {
		if name != "lo" {
			return false
		}
	}
	return true
}

func ownerText(owner string) string {
	if owner == "" {
		return "no netlab marker"
	}
	return "belongs to lab " + owner
}

// Labs lists the labs that have anything on the machine: a journal, a marked
// namespace, a marked host link or a marked OVS bridge.
func (e *Engine) Labs() ([]string, error) {
	labs := map[string]bool{}
	journaled, err := e.store.Labs()
	if err != nil {
		return nil, err
	}
	for _, l := range journaled {
		labs[l] = true
	}
	oc, err := e.connectOVS(false)
	if err != nil {
		return nil, err
	}
	s, err := e.newSession("", oc)
	if err != nil {
		return nil, err
	}
	defer s.close()
	names, err := namespace.List()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if owner, _, err := s.marker(name); err == nil && owner != "" {
			labs[owner] = true
		}
		s.forget(name)
	}
	if host, err := s.observeNS(topology.Host, nil); err == nil && host != nil {
		for _, l := range host.Links {
			if owner := l.Owner(); owner != "" {
				labs[owner] = true
			}
		}
	}
	if oc != nil {
		bridges, err := oc.Observe()
		if err != nil {
			return nil, err
		}
		for _, b := range bridges {
			if b.Owner != "" {
				labs[b.Owner] = true
			}
		}
	}
	return state.SortedNames(labs), nil
}

// marker reads whose a namespace is; links is nil when it vanished.
func (s *session) marker(name string) (owner string, links []string, err error) {
	h, err := s.ns(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return h.Marker()
}

// privateDBExists says whether netlab's private OVS has a database, which
// may hold bridges even while its daemons are not running.
func (e *Engine) privateDBExists() bool {
	dir := filepath.Join(e.store.Root, "ovs")
	_, err := os.Stat(filepath.Join(dir, "conf.db"))
	return err == nil
}
