package kernel

import (
	"encoding/binary"
	"errors"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// The host's ids of the namespaces a run makes.
//
// Every notification the kernel sends about a link whose peer lives in
// another namespace (a veth's host end) carries the id the link's
// namespace knows the peer's by, and the kernel finds that id by walking
// the namespace's ids in increasing order until it meets the peer's
// (peernet2id_alloc: idr_for_each). Left to itself it hands ids out lowest
// free first, so the host's id of a lab's k-th namespace comes after k
// others, and each notification its host end sends while it is made (its
// up, its master's two, its marker's, its carrier's) walks past them all,
// under the kernel's RTNL lock: quadratic in the size of the lab, a fifth
// of an up of 10,000 namespaces. So just before a namespace made by this
// run gets its first veth to the host, the host gives it an id lower than
// every id it has in the band below hostIDCeiling: the walks of that
// veth's notifications stop at the first id. Only giving the id walks them
// all once (the kernel checks that the namespace has none yet).
//
// An id is nothing netlab must undo: it goes with its namespace. Giving
// one is worth a little time and never an error: if the kernel refuses, the
// namespace gets the kernel's own id, as before.
const (
	// hostIDCeiling is one more than the first id a run gives.
	hostIDCeiling = 1_000_000
	// hostIDFloor is the lowest id a run gives: below it, ids are left to
	// the kernel (which starts at 0).
	hostIDFloor = 100_000
)

// hostIDs hands out the host's ids of namespaces this run made, each lower
// than the last. Other netlab runs on the machine do the same: an id one
// took between two of this run's is seen as EEXIST, and this run reads
// the lowest again.
type hostIDs struct {
	mu   sync.Mutex
	next int32 // the next id to give; 0: not read yet
	off  bool  // the kernel refused: the rest keep the kernel's ids
}

// hostIDBefore gives the namespace at the other end of a veth from the host
// its id there (see hostIDs), if this run made it and gave it none yet.
func hostIDBefore(n, peer *NS) {
	host, lab := peer, n
	if n.name == namespace.Host {
		host, lab = n, peer
	}
	if host.name != namespace.Host || lab == host || lab.cache == nil || !lab.takeNeedsID() {
		return
	}
	lab.cache.ids.give(host, lab)
}

// takeNeedsID says whether the namespace was made by this run and has not
// had its host id yet, and notes that it has now.
func (n *NS) takeNeedsID() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	need := n.needsID
	n.needsID = false
	return need
}

// give asks the host to know lab by the next id.
// Equivalent to: `ip netns set LAB ID`.
func (ids *hostIDs) give(host, lab *NS) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ids.off {
		return
	}
	if err := lab.pin(); err != nil {
		return
	}
	defer lab.unpin()
	fd := lab.file()
	for try := 0; try < 2; try++ {
		if ids.next == 0 || try > 0 {
			lowest, err := lowestHostID(host)
			if err != nil {
				ids.off = true
				return
			}
			ids.next = lowest - 1
		}
		if ids.next < hostIDFloor {
			ids.off = true
			return
		}
		id := ids.next
		ids.next--
		err := host.raw(func(s *rtnl) error {
			m := nsidMsg(unix.RTM_NEWNSID, unix.NLM_F_ACK)
			m.u32(unix.NETNSA_FD, uint32(fd))
			m.u32(unix.NETNSA_NSID, uint32(id))
			return s.exchange(m, nil)
		})
		switch {
		case err == nil:
			return
		case !errors.Is(err, unix.EEXIST):
			ids.off = true // not allowed here, say: the kernel's ids will do
			return
		}
		// The id was taken meanwhile (another run), or the namespace has
		// one already: read the lowest again, and try once more.
	}
}

// lowestHostID returns the lowest id the host has given in the band
// [hostIDFloor, hostIDCeiling), or hostIDCeiling if none.
// Equivalent to: `ip netns list-id`.
func lowestHostID(host *NS) (int32, error) {
	lowest := int32(hostIDCeiling)
	err := host.raw(func(s *rtnl) error {
		return s.exchange(nsidMsg(unix.RTM_GETNSID, unix.NLM_F_DUMP), func(typ uint16, body []byte) error {
			if id, ok := nsidOf(typ, body); ok && id >= hostIDFloor && id < lowest {
				lowest = id
			}
			return nil
		})
	})
	return lowest, err
}

// nsidMsg is a namespace id request of typ (RTM_GETNSID, RTM_NEWNSID),
// its attributes to follow.
func nsidMsg(typ, flags uint16) *nlmsg {
	return newNLMsg(typ, flags, make([]byte, 4)) // struct rtgenmsg, padded
}

// nsidOf reads the id (NETNSA_NSID) of an answer to a namespace id
// request; false if the message is not one or carries none.
func nsidOf(typ uint16, body []byte) (int32, bool) {
	if typ != unix.RTM_NEWNSID || len(body) < 4 {
		return 0, false
	}
	id, found := int32(0), false
	_ = forEachAttr(body[4:], func(atype uint16, val []byte) error {
		if atype == unix.NETNSA_NSID && len(val) == 4 {
			id, found = int32(binary.NativeEndian.Uint32(val)), true
		}
		return nil
	})
	return id, found
}
