package kernel

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// CreateNamespace makes a namespace for lab and gives it what a lab
// namespace needs first, on the thread that made it, before it leaves:
// lo up with the lab's marker (one request on a socket made there, which
// becomes the NS's), and the sysctls (written where their value differs,
// read back). It fails with an error wrapping fs.ErrExist if the name is
// taken; if the namespace was made but what follows failed, it stays,
// unmarked (the journal names it: a later up marks it, down deletes it).
// Equivalent to: `ip netns add NS && ip -n NS link set lo alias netlab:LAB up
// && ip netns exec NS sysctl -w KEY=VALUE ...`.
func (h *Handles) CreateNamespace(name, lab string, sysctls []Sysctl) (*NS, error) {
	var (
		sock *rtnl
		fd   = -1
		got  map[string]string
	)
	err := namespace.CreateWith(name, func() error {
		var err error
		if fd, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		if sock, err = openRTNL(); err != nil {
			return err
		}
		if err := sock.setLink(loIndex, "", linkChange{alias: state.NamespaceAlias(lab), setAlias: true, up: true}); err != nil {
			return fmt.Errorf("mark lo for lab %s: %w", lab, err)
		}
		got, err = writeSysctls(sysctls)
		return err
	})
	if err != nil {
		if sock != nil {
			sock.close()
		}
		if fd >= 0 {
			unix.Close(fd)
		}
		if sock != nil {
			return nil, fmt.Errorf("ns %s: %w", name, err)
		}
		return nil, err
	}
	n := h.entry(name)
	n.adopt(netns.NsHandle(fd), sock, got)
	return n, nil
}

// adopt gives n the files of a namespace just made, and what was written
// to it, in place of any it had.
func (n *NS) adopt(fd netns.NsHandle, sock *rtnl, sysctls map[string]string) {
	n.mu.Lock()
	n.closeFiles()
	n.fd, n.sock = fd, sock
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
}

// MakeVeth makes the pair in one request (this end with its MTU, MAC,
// master and up; the peer with its MTU and MAC: the kernel cannot bring
// it up before the pair is linked), its index read from the kernel's echo;
// then one request per end sets its marker with what the creation could
// not set; then offloads (ioctls through each namespace's socket) and
// addresses (by the index). It fails with an error wrapping fs.ErrExist if
// a name is taken. If a marker cannot be set the pair is deleted again, so
// no unmarked link stays.
// Equivalent to: `ip -n NS link add NAME [mtu M] [address MAC] [master BR]
// [up] type veth peer name PEER netns PEERNS [mtu M] [address MAC]`,
// `ip -n NS link set NAME alias A`, `ip -n PEERNS link set PEER alias A
// [master BR] up`, `ethtool -K ... tx off`, `ip addr replace ...`.
func (n *NS) MakeVeth(v Veth) error {
	peer := v.Peer
	if peer == nil {
		peer = n
	}
	if err := n.makeVeth(v, peer); err != nil {
		return fmt.Errorf("ns %s: add veth %s (peer %s/%s): %w", n.name, v.Name, peer.name, v.PeerName, err)
	}
	if err := n.finishEnd(v.Name, v.End); err != nil {
		return err
	}
	return peer.finishEnd(v.PeerName, v.PeerEnd)
}

func (n *NS) makeVeth(v Veth, peer *NS) error {
	if err := peer.pin(); err != nil {
		return err
	}
	defer peer.unpin()
	spec := vethSpec{name: v.Name, peer: v.PeerName, peerNS: -1, mtu: v.End.MTU, mac: v.End.MAC,
		peerMTU: v.PeerEnd.MTU, peerMAC: v.PeerEnd.MAC, up: v.End.Up}
	if peer != n {
		spec.peerNS = int(peer.file())
	}
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
	err = n.raw(func(s *rtnl) error {
		return s.setLink(index, "", linkChange{alias: v.Alias, setAlias: true})
	})
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
