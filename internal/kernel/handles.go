package kernel

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// FilesPerNamespace is how many files an open NS holds: the namespace's
// file, the rtnl socket, and a netlink.Handle's socket when one is needed.
const FilesPerNamespace = 3

// MaxOpenNamespaces bounds the namespaces a Handles keeps open at once,
// whatever the size of the lab: past it, the least recently opened idle
// one is closed, and opened again (one thread switch) when next used.
// 256 keeps every namespace of the benchmark's stars open, and a lab of
// 10,000 within the usual limit of open files (1,024 by default).
const MaxOpenNamespaces = 256

// MinOpenNamespaces is the fewest open namespaces a run needs to work
// (one per action running at once, with room to spare).
const MinOpenNamespaces = 16

// Handles keeps an NS per namespace for one run of netlab (observe, then
// apply), so each namespace is opened once: its link indices and the
// sysctls read or written stay known for the run. At most a bounded number
// have files open at once (see MaxOpenNamespaces, and OpenLimit for this
// process's limit of open files), so a run holds no file per namespace.
// Safe for concurrent use.
type Handles struct {
	mu      sync.Mutex
	m       map[string]*NS
	open    []*NS // with files open, oldest first
	maxOpen int
	fresh   freshSysctls // what namespaces made in this run had first
	sys     procSys      // where sysctls are opened
	rtnl    rtnlGate     // veths made at once step aside for IPv6 writes
	ids     hostIDs      // the host's ids of namespaces made in this run
}

// NewHandles returns an empty cache.
func NewHandles() *Handles {
	return &Handles{m: map[string]*NS{}, maxOpen: OpenLimit()}
}

// OpenLimit is how many namespaces a run keeps open at once here: at most
// MaxOpenNamespaces, fewer when the limit of open files (RLIMIT_NOFILE,
// less what the rest of netlab holds) allows fewer, never below
// MinOpenNamespaces.
func OpenLimit() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return MaxOpenNamespaces
	}
	n := (int64(lim.Cur) - FilesReserve) / FilesPerNamespace
	return int(max(MinOpenNamespaces, min(MaxOpenNamespaces, n)))
}

// FilesReserve is what netlab needs open besides its namespaces' files:
// Open vSwitch and nftables connections, journals, locks, the standard
// streams, threads' namespace files.
const FilesReserve = 128

// entry returns the namespace's NS, made (not opened) if need be.
func (h *Handles) entry(name string) *NS {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.m[name]
	if n == nil {
		n = makeNS(name, h)
		h.m[name] = n
	}
	return n
}

// Get returns the namespace's handle, its file open: an error wrapping
// fs.ErrNotExist if there is no such namespace.
func (h *Handles) Get(name string) (*NS, error) {
	n := h.entry(name)
	if err := n.pin(); err != nil {
		return nil, err
	}
	n.unpin()
	return n, nil
}

// opened notes that n opened its files, and closes the oldest idle others
// past the bound. The host's stay open: every run uses them throughout.
func (h *Handles) opened(n *NS) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = append(h.open, n)
	if len(h.open) <= h.maxOpen {
		return
	}
	keep := h.open[:0]
	over := len(h.open) - h.maxOpen
	for _, o := range h.open {
		if over > 0 && o != n && o.name != namespace.Host && o.release() {
			over--
			continue
		}
		keep = append(keep, o)
	}
	clear(h.open[len(keep):])
	h.open = keep
}

// Forget closes the handle of a namespace: an open handle keeps a deleted
// namespace (and its links) alive, and one of a namespace that is not the
// lab's need not stay open.
func (h *Handles) Forget(name string) {
	h.mu.Lock()
	n := h.m[name]
	delete(h.m, name)
	h.mu.Unlock()
	if n != nil {
		n.Close()
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
	h.mu.Lock()
	h.open = nil
	h.mu.Unlock()
	h.sys.close()
}

// Prepare opens the named namespaces that are not open yet and reads the
// sysctls keys(name) of each that this run does not know yet, parallel
// threads going from one namespace to the next (namespace.Visit): what
// observing them needs a thread inside for, done without a hand-off per
// namespace. A namespace that does not exist gets an error wrapping
// fs.ErrNotExist; a sysctl the kernel does not have is left unknown (and
// Observe leaves it out too).
func (h *Handles) Prepare(names []string, keys func(name string) []string, parallel int) []error {
	errs := make([]error, len(names))
	var todo []int
	for i, name := range names {
		if name == namespace.Host {
			continue // opened and read where it is, without a switch
		}
		n := h.entry(name)
		n.mu.Lock()
		open := n.fd.IsOpen() && n.sock != nil
		known := true
		for _, k := range keys(name) {
			if _, ok := n.sysctls[k]; !ok {
				known = false
			}
		}
		n.mu.Unlock()
		if !open || !known {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return errs
	}
	parallel = max(1, min(parallel, len(todo)))
	var wg sync.WaitGroup
	for w := range parallel {
		var idx []int
		var part []string
		for k := w; k < len(todo); k += parallel {
			idx = append(idx, todo[k])
			part = append(part, names[todo[k]])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := make([]*madeNamespace, len(part))
			es := namespace.Visit(part, func(k int) error {
				m, err := h.openHere(part[k], keys)
				if err != nil {
					failed[k] = m
					return err
				}
				// To the cache at once (see CreateNamespaces).
				h.entry(part[k]).take(m)
				return nil
			})
			for k, i := range idx {
				if failed[k] != nil {
					failed[k].close()
				}
				if es[k] != nil {
					errs[i] = fmt.Errorf("ns %s: %w", part[k], es[k])
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// openHere opens, on a thread inside the namespace, its file and a socket,
// and reads the sysctls keys(name) there; on an error, what it opened is
// returned to be closed.
func (h *Handles) openHere(name string, keys func(name string) []string) (*madeNamespace, error) {
	m := &madeNamespace{fd: -1, sysctls: map[string]string{}}
	var err error
	if m.fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return m, err
	}
	if m.sock, err = openRTNL(); err != nil {
		return m, err
	}
	for _, key := range keys(name) {
		v, err := readSysctl(&h.sys, key)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("sysctl %s: %w", key, err)
		}
		m.sysctls[key] = v
	}
	return m, nil
}
