package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// CreateNamespace makes a namespace for lab and gives it what a lab
// namespace needs first, on the thread that made it, before it leaves:
// lo up with the lab's marker (one request on a socket made there, which
// becomes the NS's), and the sysctls (written where their value differs,
// read back; see freshSysctls). It fails with an error wrapping fs.ErrExist if the name is
// taken; if the namespace was made but what follows failed, it stays,
// unmarked (the journal names it: a later up marks it, down deletes it).
// Equivalent to: `ip netns add NS && ip -n NS link set lo alias netlab:LAB up
// && ip netns exec NS sysctl -w KEY=VALUE ...`.
func (h *Handles) CreateNamespace(name, lab string, sysctls []Sysctl) (*NS, error) {
	var m *madeNamespace
	err := namespace.CreateWith(name, func() error {
		var err error
		m, err = prepareNamespace(lab, sysctls, &h.fresh, &h.sys)
		return err
	})
	if err != nil {
		if m != nil {
			m.close()
			return nil, fmt.Errorf("ns %s: %w", name, err)
		}
		return nil, err
	}
	n := h.entry(name)
	n.adopt(netns.NsHandle(m.fd), m.sock, m.sysctls)
	return n, nil
}

// adopt gives n the files of a namespace just made, and what was written
// to it, in place of any it had; the host gives it an id before its first
// veth there (hostIDs).
func (n *NS) adopt(fd netns.NsHandle, sock *rtnl, sysctls map[string]string) {
	n.mu.Lock()
	n.closeFiles()
	n.fd, n.sock = fd, sock
	n.needsID = true
	clear(n.indices)
	clear(n.sysctls)
	for k, v := range sysctls {
		n.sysctls[k] = v
	}
	queue := n.cache != nil && !n.queued
	n.queued = true
	n.mu.Unlock()
	if queue {
		n.cache.opened(n)
	}
}

// take gives n the files and sysctls m opened and read in the namespace,
// where n has none open (else m's are closed: n's stay), and adds m's
// sysctls to what n knows.
func (n *NS) take(m *madeNamespace) {
	n.mu.Lock()
	for k, v := range m.sysctls {
		n.sysctls[k] = v
	}
	if n.closed || n.users > 0 || n.fd.IsOpen() && n.sock != nil {
		n.mu.Unlock()
		m.close()
		return
	}
	n.closeFiles()
	n.fd, n.sock = netns.NsHandle(m.fd), m.sock
	queue := n.cache != nil && !n.queued
	n.queued = true
	n.mu.Unlock()
	if queue {
		n.cache.opened(n)
	}
}

// Veth is a veth pair to make: Name here, PeerName in Peer's namespace
// (nil: this one), each end marked with its alias and brought to the state
// of End and PeerEnd.
type Veth struct {
	Name, Alias         string
	Peer                *NS
	PeerName, PeerAlias string
	End, PeerEnd        VethEnd
}

// VethEnd is what a new veth end should be besides made and marked: what
// the plan would otherwise set, one command at a time, right after.
type VethEnd struct {
	LinkState
	// TxChecksum, when set, turns tx checksum offload on or off.
	TxChecksum *bool
	Addrs      []netip.Prefix
	// Group is the end's interface group (0: the default), given at
	// creation: a lab's host links are made in LabGroup(lab).
	Group uint32
	// NoIPv6 disables IPv6 on the end before it first goes up (a bridge
	// port: plan.AddVeth says why).
	NoIPv6 bool
}

// MakeVeth makes the pair in one request (this end with its MTU, MAC,
// master and up; the peer with its MTU and MAC: the kernel cannot bring
// it up before the pair is linked), its index read from the kernel's echo;
// then one request per end sets its marker with what the creation could
// not set; then offloads (ioctls through each namespace's socket) and
// addresses (by the index). It fails with an error wrapping fs.ErrExist if
// a name is taken. If a marker cannot be set the pair is deleted again, so
// no unmarked link stays. Before the pair between the host and a
// namespace this run made, the host gives that namespace its id (hostIDs).
// Equivalent to: [`ip netns set PEERNS ID`,] `ip -n NS link add NAME
// [mtu M] [address MAC] [master BR] [up] type veth peer name PEER netns
// PEERNS [mtu M] [address MAC]`, `ip -n NS link set NAME alias A`,
// `ip -n PEERNS link set PEER alias A [master BR] up`, `ethtool -K ... tx
// off`, `ip addr replace ...`.
func (n *NS) MakeVeth(v Veth) error {
	peer := v.Peer
	if peer == nil {
		peer = n
	}
	g := n.gate()
	g.enter()
	defer g.leave()
	if err := n.makeVeth(v, peer, g); err != nil {
		return fmt.Errorf("ns %s: add veth %s (peer %s/%s): %w", n.name, v.Name, peer.name, v.PeerName, err)
	}
	if err := n.finishEnd(v.Name, v.End); err != nil {
		return err
	}
	return peer.finishEnd(v.PeerName, v.PeerEnd)
}

func (n *NS) makeVeth(v Veth, peer *NS, g *rtnlGate) error {
	if err := peer.pin(); err != nil {
		return err
	}
	defer peer.unpin()
	// An end without IPv6 comes up only once it is off: after the
	// creation, with the marker.
	spec := vethSpec{name: v.Name, peer: v.PeerName, peerNS: -1, mtu: v.End.MTU, mac: v.End.MAC,
		peerMTU: v.PeerEnd.MTU, peerMAC: v.PeerEnd.MAC, up: v.End.Up && !v.End.NoIPv6, group: v.End.Group, peerGroup: v.PeerEnd.Group}
	if peer != n {
		spec.peerNS = int(peer.file())
	}
	hostIDBefore(n, peer)
	var index int32
	err := n.raw(func(s *rtnl) error {
		c, err := n.change(s, LinkState{Master: v.End.Master})
		if err != nil {
			return err
		}
		spec.master = c.master
		index, err = s.addVeth(spec)
		return err
	})
	if err != nil {
		return err
	}
	n.learn(v.Name, index)
	peer.learn(v.PeerName, 0)
	// The kernel ignores IFLA_IFALIAS in a create request, so the markers
	// follow, each through its own namespace's socket; the peer's with
	// its master and up, which its creation could not take.
	if v.End.NoIPv6 {
		err = g.alone(func() error { return n.disableIPv6(v.Name) })
	}
	if err == nil {
		err = n.raw(func(s *rtnl) error {
			return s.setLink(index, "", linkChange{alias: v.Alias, setAlias: true, up: v.End.Up && v.End.NoIPv6})
		})
	}
	if err == nil && v.PeerEnd.NoIPv6 {
		err = g.alone(func() error { return peer.disableIPv6(v.PeerName) })
	}
	if err == nil {
		pst := v.PeerEnd.LinkState
		pst.MTU, pst.MAC = 0, nil
		pst.Alias, pst.SetAlias = v.PeerAlias, true
		if err = peer.SetLink(v.PeerName, pst); err != nil && (pst.Master != nil || pst.Up) {
			// Marked at least, if that alone works: the link is the
			// lab's, and what failed is said.
			if aerr := peer.SetAlias(v.PeerName, v.PeerAlias); aerr == nil {
				return fmt.Errorf("%s/%s: %w", peer.name, v.PeerName, err)
			}
		}
	}
	if err != nil {
		if derr := n.DeleteLink(v.Name); derr != nil {
			err = errors.Join(err, derr)
		}
		return err
	}
	return nil
}

// disableIPv6 turns IPv6 off on a link, before it goes up. A kernel
// without IPv6 (no such key) has nothing to turn off.
// Equivalent to: `ip netns exec NS sysctl -w net/ipv6/conf/LINK/disable_ipv6=1`.
func (n *NS) disableIPv6(link string) error {
	// One write, nothing read before or after: the link is new, and what
	// observe compares does not include the key. Each system call here
	// holds the run's other veths back (rtnlGate).
	write := func() error {
		err := writeOnly(n.procSys(), "net/ipv6/conf/"+link+"/disable_ipv6", "1")
		if err == nil || isNotExist(err) {
			return nil
		}
		return fmt.Errorf("turn IPv6 off: %w", err)
	}
	var err error
	if n.name == namespace.Host {
		// The caller's thread is in the process's own namespace (only
		// namespace's locked threads ever leave it): no switch.
		err = write()
	} else {
		err = n.inside(write)
	}
	if err != nil {
		return fmt.Errorf("ns %s: %s: %w", n.name, link, err)
	}
	return nil
}

// finishEnd gives a new veth end what is left of its state: offloads and
// addresses.
func (n *NS) finishEnd(name string, e VethEnd) error {
	if e.TxChecksum != nil {
		if err := n.SetTxChecksum(name, *e.TxChecksum); err != nil {
			return err
		}
	}
	for _, p := range e.Addrs {
		if err := n.AddrReplace(name, p); err != nil {
			return err
		}
	}
	return nil
}

// NamespaceSpec is a namespace CreateNamespaces makes: its name, and the
// sysctls it gets (CreateNamespace).
type NamespaceSpec struct {
	Name    string
	Sysctls []Sysctl
}

// CreateNamespaces is CreateNamespace for many namespaces, parallel
// threads each going from one new namespace to the next without a
// hand-off in between (namespace.CreateEach); done(i, err) is called as
// each is made (concurrently).
func (h *Handles) CreateNamespaces(specs []NamespaceSpec, lab string, parallel int, done func(i int, err error)) {
	parallel = max(1, min(parallel, len(specs)))
	var wg sync.WaitGroup
	for w := range parallel {
		var idx []int
		var names []string
		for i := w; i < len(specs); i += parallel {
			idx = append(idx, i)
			names = append(names, specs[i].Name)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := make([]*madeNamespace, len(idx))
			errs := namespace.CreateEach(names, func(k int) error {
				m, err := prepareNamespace(lab, specs[idx[k]].Sysctls, &h.fresh, &h.sys)
				if err != nil {
					failed[k] = m
					return err
				}
				// To the cache at once, which keeps at most OpenLimit
				// open: held until the thread had made them all, every
				// namespace's file and socket stayed open (a limit of
				// 1,024 files stopped an up at the 516th namespace).
				h.entry(names[k]).adopt(netns.NsHandle(m.fd), m.sock, m.sysctls)
				return nil
			})
			for k, i := range idx {
				if m := failed[k]; m != nil {
					m.close()
				}
				done(i, errs[k])
			}
		}()
	}
	wg.Wait()
}

// madeNamespace is what prepareNamespace opened and wrote.
type madeNamespace struct {
	fd      int
	sock    *rtnl
	sysctls map[string]string
}

func (m *madeNamespace) close() {
	if m.sock != nil {
		m.sock.close()
	}
	if m.fd >= 0 {
		unix.Close(m.fd)
	}
}

// prepareNamespace does, on a thread inside a new namespace, what
// CreateNamespace gives it: its file and a socket opened there, lo up
// with the lab's marker, the sysctls.
func prepareNamespace(lab string, sysctls []Sysctl, fresh *freshSysctls, sys *procSys) (*madeNamespace, error) {
	m := &madeNamespace{fd: -1}
	var err error
	if m.fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return m, err
	}
	if m.sock, err = openRTNL(); err != nil {
		return m, err
	}
	if err := m.sock.setLink(loIndex, "", linkChange{alias: state.NamespaceAlias(lab), setAlias: true, up: true}); err != nil {
		return m, fmt.Errorf("mark lo for lab %s: %w", lab, err)
	}
	m.sysctls, err = writeSysctls(sys, sysctls, fresh)
	return m, err
}

// ReadOwners reads whose each named namespace is (the lab on its lo's
// alias, "" for none). Those the process's namespace has an id for are
// read from here, many to a request (ownersByID); the rest by parallel
// threads each going from one namespace to the next (namespace.Visit): no
// file held, no hand-off per namespace. A namespace that does not exist
// gets an error wrapping fs.ErrNotExist.
// Equivalent to: `ip -n NS link show lo` for each.
func ReadOwners(names []string, parallel int) ([]string, []error) {
	owners := make([]string, len(names))
	errs := make([]error, len(names))
	rest, err := ownersByID(names, owners, errs, parallel)
	if err != nil {
		// Read them all from inside, as before ids were asked for.
		clear(owners)
		clear(errs)
		rest = make([]int, len(names))
		for i := range rest {
			rest[i] = i
		}
	}
	if len(rest) == 0 {
		return owners, errs
	}
	parallel = max(1, min(parallel, len(rest)))
	var wg sync.WaitGroup
	for w := range parallel {
		var idx []int
		var part []string
		for k := w; k < len(rest); k += parallel {
			idx = append(idx, rest[k])
			part = append(part, names[rest[k]])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]string, len(part))
			es := namespace.Visit(part, func(k int) error {
				s, err := openRTNL()
				if err != nil {
					return err
				}
				defer s.close()
				return s.getLink(loIndex, "", func(body []byte) error {
					_, alias, err := linkNameAlias(body)
					got[k], _ = state.ParseNamespaceAlias(alias)
					return err
				})
			})
			for k, i := range idx {
				owners[i], errs[i] = got[k], es[k]
			}
		}()
	}
	wg.Wait()
	return owners, errs
}
