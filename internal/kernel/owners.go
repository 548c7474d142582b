package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
)

// ownersBatch is how many namespaces one write asks about: their answers
// (lo without statistics, about 1 KiB each) fit any receive buffer.
const ownersBatch = 64

// ownersByID reads whose each named namespace is without entering it, over
// sockets of the process's namespace (parallel of them, each taking the
// next batch): a namespace this one has an id for is asked for by its
// file (RTM_GETNSID), then its lo by that id (RTM_GETLINK with
// IFLA_TARGET_NETNSID), many requests to a write. A namespace's file stays
// open until its lo has answered, so its id cannot go to another meanwhile.
//
// It fills owners and errs of what it read, and returns the indexes of the
// rest, for the caller to read from inside (where an error is reported
// properly): namespaces without an id (assigning one would change a
// namespace that may not be netlab's; the kernel gives a namespace linked
// to this one its id when it first describes such a link here, as the
// host's observation after up's changes does), and any whose answer was an
// error.
//
// Equivalent to: `ip netns list-id`, then `ip -link-netnsid ID link show lo`.
func ownersByID(names []string, owners []string, errs []error, parallel int) (rest []int, err error) {
	batches := (len(names) + ownersBatch - 1) / ownersBatch
	parallel = max(1, min(parallel, batches))
	var (
		mu   sync.Mutex
		next int // the next batch to take
		wg   sync.WaitGroup
		fail error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := openRTNL()
			if err != nil {
				mu.Lock()
				fail = err
				mu.Unlock()
				return
			}
			defer s.close()
			for {
				mu.Lock()
				b := next
				next++
				stop := b >= batches || fail != nil
				mu.Unlock()
				if stop {
					return
				}
				idx := make([]int, 0, ownersBatch)
				for i := b * ownersBatch; i < min((b+1)*ownersBatch, len(names)); i++ {
					idx = append(idx, i)
				}
				left, err := s.ownersOf(names, idx, owners, errs)
				mu.Lock()
				rest = append(rest, left...)
				if err != nil {
					fail = err
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		return nil, fail
	}
	slices.Sort(rest)
	return rest, nil
}

// ownersOf is ownersByID for one batch of indexes.
func (s *rtnl) ownersOf(names []string, idx []int, owners []string, errs []error) (rest []int, err error) {
	fds := make([]int, len(idx))
	for k := range fds {
		fds[k] = -1
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	var asked []int // positions in idx with a file open
	var reqs []*nlmsg
	for k, i := range idx {
		fd, err := unix.Open(namespace.Path(names[i]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			errs[i] = fmt.Errorf("namespace %s: %w", names[i], fs.ErrNotExist)
			continue
		}
		if err != nil {
			rest = append(rest, i)
			continue
		}
		fds[k] = fd
		m := nsidMsg(unix.RTM_GETNSID, unix.NLM_F_ACK)
		m.u32(unix.NETNSA_FD, uint32(fd))
		asked = append(asked, k)
		reqs = append(reqs, m)
	}
	ids := make([]int32, len(reqs))
	for r := range ids {
		ids[r] = unix.NETNSA_NSID_NOT_ASSIGNED
	}
	kerrs, err := s.batch(reqs, func(r int, typ uint16, body []byte) {
		if id, ok := nsidOf(typ, body); ok {
			ids[r] = id
		}
	})
	if err != nil {
		return nil, err
	}
	var named []int // indexes into names, one per request below
	reqs = reqs[:0]
	for r, k := range asked {
		i := idx[k]
		if kerrs[r] != nil || ids[r] < 0 {
			rest = append(rest, i)
			continue
		}
		m := newNLMsg(unix.RTM_GETLINK, unix.NLM_F_ACK, ifinfomsg(loIndex, 0, 0))
		m.u32(unix.IFLA_TARGET_NETNSID, uint32(ids[r]))
		m.u32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
		named = append(named, i)
		reqs = append(reqs, m)
	}
	found := make([]bool, len(reqs))
	perrs := make([]error, len(reqs))
	kerrs, err = s.batch(reqs, func(r int, typ uint16, body []byte) {
		if typ != unix.RTM_NEWLINK {
			return
		}
		found[r] = true
		_, alias, err := linkNameAlias(body)
		owners[named[r]], _ = state.ParseNamespaceAlias(alias)
		perrs[r] = err
	})
	if err != nil {
		return nil, err
	}
	for r, i := range named {
		if kerrs[r] != nil || perrs[r] != nil || !found[r] {
			owners[i] = ""
			rest = append(rest, i)
		}
	}
	return rest, nil
}

// batch sends the requests in one write and reads their answers: each
// message answering request r goes to each(r, type, payload) (valid only
// during the call), and errs[r] is the kernel's error for it, nil for
// none. Every request must ask for an acknowledgement (NLM_F_ACK), which
// ends its answer; the kernel carries them out in order and goes on past
// one that fails. The answers must fit the socket's receive buffer (they
// wait there until the write is done).
func (s *rtnl) batch(reqs []*nlmsg, each func(r int, typ uint16, body []byte)) (errs []error, err error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.seq + 1
	var out []byte
	for _, m := range reqs {
		s.seq++
		binary.NativeEndian.PutUint32(m.b[0:4], uint32(len(m.b)))
		binary.NativeEndian.PutUint32(m.b[8:12], s.seq)
		out = append(out, m.b...)
	}
	if err := unix.Sendto(s.fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	errs = make([]error, len(reqs))
	left := len(reqs)
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	err = s.receive(bp, func(typ, _ uint16, seq uint32, body []byte) (bool, error) {
		r := int(seq - first)
		if r < 0 || r >= len(reqs) {
			return false, nil // an answer to an earlier request that timed out
		}
		if typ != unix.NLMSG_ERROR {
			each(r, typ, body)
			return false, nil
		}
		if len(body) < 4 {
			return true, fmt.Errorf("netlink: %w", ErrTruncated)
		}
		if errno := int32(binary.NativeEndian.Uint32(body[0:4])); errno != 0 {
			errs[r] = unix.Errno(-errno)
		}
		left--
		return left == 0, nil
	})
	if err != nil {
		s.broken = true
		return nil, err
	}
	return errs, nil
}
