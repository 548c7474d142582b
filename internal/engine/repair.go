package engine

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// repairCrashLeftovers finishes what a crash (or kill -9) interrupted between
// creating an object and marking it. The journal recorded the intent before
// the creation, and up had checked that no object of that name existed, so
// an unmarked object the journal names is ours:
//   - a namespace file that was never mounted is removed;
//   - a journaled namespace with no marker and nothing but lo gets its marker;
//   - a journaled host link with no alias at all is deleted (up makes it again).
//
// Anything carrying someone else's marker, or with content, stays a clash.
func (s *session) repairCrashLeftovers(j *state.Journal) error {
	for _, name := range j.Namespaces {
		if !namespace.Exists(name) {
			if err := namespace.Delete(name); err != nil {
				return fmt.Errorf("remove half-created namespace %s: %w", name, err)
			}
			continue
		}
		o, err := s.observeNS(name, nil)
		if err != nil || o == nil {
			continue
		}
		if o.Owner == "" && onlyLoopback(o) {
			if err := s.handles[name].MarkNamespace(s.lab); err != nil {
				return err
			}
		}
	}
	if len(j.HostLinks) == 0 {
		return nil
	}
	host, err := s.observeNS(topology.Host, nil)
	if err != nil {
		return err
	}
	for _, name := range j.HostLinks {
		if l := host.Links[name]; l != nil && l.Alias == "" && l.Kind != "" {
			if err := s.handles[topology.Host].DeleteLink(name); err != nil && !errors.Is(err, kernel.ErrLinkNotFound) && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
