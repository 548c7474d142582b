package observe

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/nft"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// Down observes what down needs, and no more: whose each namespace
// is (its marker) and its links' names, the host's links with their
// markers and the host sysctls the journal saved, the lab's NAT table in
// the host, the OVS bridges of the lab or with its ports, and its
// supervised processes.
func (s *Reader) Down(lab string, j *state.Journal) (*state.Snapshot, error) {
	snap := &state.Snapshot{Lab: lab, Namespaces: map[string]*state.Namespace{}, Bridges: map[string]*state.Bridge{}}
	// Open vSwitch answers while the kernel is read: two waits become one.
	ovsBridges := later(func() (map[string]*state.Bridge, error) {
		if s.OVS == nil {
			return nil, nil
		}
		return s.OVS.ObserveLab(lab)
	})
	// The host's side too, while the namespaces' owners are read. It
	// writes into snap: every return waits for it.
	hostDone := later(func() (*state.Namespace, error) { return s.downHost(lab, j, snap) })
	names, err := namespace.List()
	if err != nil {
		hostDone()
		return nil, err
	}
	journaled := make(map[string]bool, len(j.Namespaces))
	for _, n := range j.Namespaces {
		journaled[n] = true
	}
	// Whose each namespace is: its lo read from here by the namespace's id
	// (from inside for one without), no file kept; its links only for one
	// the journal names that has no marker (a crash before marking: it is the
	// lab's if it holds nothing but lo).
	owners, errs := kernel.ReadOwners(names, s.parallel())
	for i, name := range names {
		owner, err := owners[i], errs[i]
		if errors.Is(err, fs.ErrNotExist) {
			continue // vanished
		}
		if err == nil && owner == "" && journaled[name] {
			var links []string
			owner, links, err = s.Marker(name)
			s.forget(name)
			if err == nil && links == nil {
				continue // vanished
			}
			o := &state.Namespace{Name: name, Owner: owner, Links: map[string]*state.Link{}}
			for _, l := range links {
				o.Links[l] = &state.Link{Name: l}
			}
			snap.Namespaces[name] = o
			continue
		}
		switch {
		case err != nil && journaled[name]:
			hostDone()
			return nil, fmt.Errorf("namespace %s: %w", name, err)
		case err != nil:
			// Another lab's namespace may be half made while we look;
			// only one the journal names must be readable.
		case owner == lab || journaled[name]:
			snap.Namespaces[name] = &state.Namespace{Name: name, Owner: owner, Links: map[string]*state.Link{"lo": {Name: "lo"}}}
		}
	}
	host, err := hostDone()
	if err != nil {
		return nil, err
	}
	snap.Namespaces[topology.Host] = host
	bridges, err := ovsBridges()
	if err != nil {
		return nil, err
	}
	for name, b := range bridges {
		if b.Owner == lab || slices.Contains(j.Bridges, name) || hasOwnedPort(b, lab) {
			snap.Bridges[name] = b
		}
	}
	for name, l := range host.Links {
		if l.Kind == state.KindBridge && snap.Bridges[name] == nil {
			snap.Bridges[name] = &state.Bridge{Name: name, Type: topology.BridgeLinux, Owner: l.Owner()}
		}
	}
	s.Procs.Observe(snap)
	s.Procs.ObserveServices(snap)
	s.Procs.ObserveTimelines(snap)
	return snap, nil
}

// downHost observes what down needs of the host: its links that are the
// lab's (by marker or the journal) with the host sysctls the journal
// saved, what it shares with other labs (into snap's SysctlHolders), the
// lab's NAT table and loss rules there.
func (s *Reader) downHost(lab string, j *state.Journal, snap *state.Snapshot) (*state.Namespace, error) {
	h, err := s.ns(topology.Host)
	if err != nil {
		return nil, err
	}
	host, err := h.ObserveLinks(state.SortedNames(j.HostSysctls))
	if err != nil {
		return nil, fmt.Errorf("observe namespace %s: %w", topology.Host, err)
	}
	if err := s.observeHostShares(lab, nil, host, snap); err != nil {
		return nil, err
	}
	for name, l := range host.Links {
		if l.Owner() != lab && !slices.Contains(j.HostLinks, name) && !slices.Contains(j.Bridges, name) && j.External[name].Bridge == "" {
			delete(host.Links, name)
		}
	}
	t, err := nft.ObserveNAT(topology.Host, lab)
	if err != nil {
		return nil, err
	}
	host.NAT = t
	if err := observeDownLoss(lab, j, host); err != nil {
		return nil, err
	}
	return host, nil
}

// Marker reads whose a namespace is; links is nil when it vanished.
func (s *Reader) Marker(name string) (owner string, links []string, err error) {
	h, err := s.ns(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil
		}
		return "", nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	return h.Marker()
}

// Labs lists the labs that have anything here: a journal, a marked
// namespace, a marked host link or a marked OVS bridge.
func (s *Reader) Labs() ([]string, error) {
	labs := map[string]bool{}
	journaled, err := s.Store.Labs()
	if err != nil {
		return nil, err
	}
	for _, l := range journaled {
		labs[l] = true
	}
	names, err := namespace.List()
	if err != nil {
		return nil, err
	}
	owners, errs := kernel.ReadOwners(names, s.parallel())
	for i := range names {
		if errs[i] == nil && owners[i] != "" {
			labs[owners[i]] = true
		}
	}
	if host, err := s.Namespace(topology.Host, nil); err == nil && host != nil {
		for _, l := range host.Links {
			if owner := l.Owner(); owner != "" {
				labs[owner] = true
			}
		}
	}
	if s.OVS != nil {
		bridges, err := s.OVS.Observe()
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
