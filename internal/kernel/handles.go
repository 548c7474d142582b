package kernel

import (
	"sync"

	"github.com/netlab-dev/netlab/internal/state"
)

// Handles keeps one open NS per namespace for one run of netlab (observe,
// then apply), so each namespace is opened once. Safe for concurrent use.
type Handles struct {
	mu sync.Mutex
	m  map[string]*NS
}

// NewHandles returns an empty cache.
func NewHandles() *Handles { return &Handles{m: map[string]*NS{}} }

// Get returns the namespace's handle, opening it the first time.
func (h *Handles) Get(name string) (*NS, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.m[name]; n != nil {
		return n, nil
	}
	n, err := Open(name)
	if err != nil {
		return nil, err
	}
	h.m[name] = n
	return n, nil
}

// Forget closes the handle of a namespace: an open handle keeps a deleted
// namespace (and its links) alive, and one of a namespace that is not the
// lab's need not stay open.
func (h *Handles) Forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.m[name]; n != nil {
		n.Close()
		delete(h.m, name)
	}
}

// Close closes every handle.
func (h *Handles) Close() {
	h.mu.Lock()
	names := state.SortedNames(h.m)
	h.mu.Unlock()
	for _, name := range names {
		h.Forget(name)
	}
}
