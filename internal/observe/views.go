package observe

import (
	"os"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/view"
)

// observeViews reads what the lab's programs see, as written in its
// directory: the hash of its hosts file, and of each namespace's view.
func (s *Reader) observeViews(lab string, snap *state.Snapshot) {
	if b, err := os.ReadFile(s.Store.HostsFile(lab)); err == nil {
		snap.HostsHash = state.ContentHash(b)
	}
	for name, o := range snap.Namespaces {
		if m, err := view.ReadManifest(s.Store.ViewDir(lab, name)); err == nil {
			o.ViewHash = m.Hash
		}
	}
}
