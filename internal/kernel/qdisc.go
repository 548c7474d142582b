package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// A link's impairments are tc qdiscs at its root with netlab's own handles:
// a tbf for a rate (state.QdiscHandleTBF) and a netem for delay and the
// other netem fields (state.QdiscHandleNetem), the netem the tbf's child
// when there are both. A root qdisc with another handle is someone else's.

// ErrQdiscNotOurs is wrapped by errors about a root qdisc netlab did not
// make.
var ErrQdiscNotOurs = errors.New("root qdisc is not netlab's")

// TBF is the token bucket of a rate.
type TBF struct {
	RateBytes uint64 // bytes per second
	Burst     uint32 // bucket, bytes
	Limit     uint32 // queue, bytes
}

// Netem is what a netem qdisc applies.
type Netem struct {
	Delay, Jitter               time.Duration
	Duplicate, Corrupt, Reorder float64 // percent
	Limit                       uint32  // packets; 0: netem's default (1000)
}

// NetemDefaultLimit is the queue netem has when none is given (packets).
const NetemDefaultLimit = 1000

func ourQdisc(major uint16) bool {
	return major == state.QdiscHandleTBF || major == state.QdiscHandleNetem
}

// ObserveQdiscs reads the root qdisc of every link in the namespace that
// does not have the kernel's default one (handle 0:), by link name, with
// what netlab's apply.
//
// Equivalent to: `tc -n NS qdisc show`.
func (n *NS) ObserveQdiscs() (map[string]*state.Qdisc, error) {
	out, err := n.qdiscs()
	if err != nil {
		return nil, fmt.Errorf("ns %s: observe qdiscs: %w", n.name, err)
	}
	return out, nil
}

func (n *NS) qdiscs() (map[string]*state.Qdisc, error) {
	names := map[int]string{}
	err := n.raw(func(s *rtnl) error {
		return RetryDumpErr(func() error {
			clear(names)
			return s.dump(unix.RTM_GETLINK, func(body []byte) error {
				name, _, err := linkNameAlias(body)
				names[int(binary.NativeEndian.Uint32(body[4:8]))] = name
				return err
			})
		})
	})
	if err != nil {
		return nil, err
	}
	var qs []netlink.Qdisc
	err = n.nl(func(h *netlink.Handle) error {
		var err error
		qs, err = RetryDump(func() ([]netlink.Qdisc, error) { return h.QdiscList(nil) })
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]*state.Qdisc{}
	var children []netlink.Qdisc
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_ROOT {
			children = append(children, q)
			continue
		}
		major, _ := netlink.MajorMinor(a.Handle)
		name, ok := names[a.LinkIndex]
		if major == 0 || !ok {
			continue // the kernel's default (noqueue, pfifo_fast, mq...)
		}
		o := &state.Qdisc{Kind: q.Type(), Handle: major, Ours: ourQdisc(major)}
		switch q := q.(type) {
		case *netlink.Tbf:
			if o.Ours && major == state.QdiscHandleTBF {
				o.Impair.Rate = q.Rate * 8
				o.LimitBytes = q.Limit
				o.Burst = netlink.Xmitsize(q.Rate, q.Buffer)
			} else {
				o.Ours = false
			}
		case *netlink.Netem:
			if o.Ours && major == state.QdiscHandleNetem {
				netemInto(&o.Impair, q)
			} else {
				o.Ours = false
			}
		default:
			o.Ours = false // a netlab handle on a kind netlab never makes
		}
		out[name] = o
	}
	// A netem child of netlab's tbf.
	for _, q := range children {
		a := q.Attrs()
		name := names[a.LinkIndex]
		o := out[name]
		major, _ := netlink.MajorMinor(a.Handle)
		nq, isNetem := q.(*netlink.Netem)
		if o == nil || !o.Ours || o.Kind != "tbf" || a.Parent != netlink.MakeHandle(state.QdiscHandleTBF, 1) {
			continue
		}
		if !isNetem || major != state.QdiscHandleNetem {
			if q.Type() != "bfifo" && q.Type() != "pfifo" { // tbf's own inner fifo
				o.Ours = false
			}
			continue
		}
		netemInto(&o.Impair, nq)
	}
	return out, nil
}

// netemInto reads a netem qdisc back into the file's units, rounded as the
// file writes them (microseconds, millionths of a percent).
func netemInto(im *topology.Impair, q *netlink.Netem) {
	us := func(ticks uint32) time.Duration {
		return time.Duration(math.Round(float64(ticks)/netlink.TickInUsec())) * time.Microsecond
	}
	pct := func(v uint32) float64 { return math.Round(float64(v)/math.MaxUint32*100*1e6) / 1e6 }
	im.Delay, im.Jitter = us(q.Latency), us(q.Jitter)
	im.Duplicate, im.Corrupt, im.Reorder = pct(q.Duplicate), pct(q.CorruptProb), pct(q.ReorderProb)
	// The queue limit is a netem root's (the tbf's, in bytes, with a rate);
	// netem's default of 1000 packets reads as none.
	if im.Rate == 0 && q.Limit != NetemDefaultLimit {
		im.Limit = int(q.Limit)
	}
}

func netemQdisc(link int, parent uint32, n *Netem) *netlink.Netem {
	us := func(d time.Duration) uint32 { return uint32(d / time.Microsecond) }
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: link, Parent: parent, Handle: netlink.MakeHandle(state.QdiscHandleNetem, 0)},
		netlink.NetemQdiscAttrs{
			Latency: us(n.Delay), Jitter: us(n.Jitter), Limit: n.Limit,
			Duplicate: float32(n.Duplicate), CorruptProb: float32(n.Corrupt), ReorderProb: float32(n.Reorder),
		})
	if n.Limit == 0 {
		q.Limit = NetemDefaultLimit
	}
	return q
}

func tbfQdisc(link int, t *TBF) *netlink.Tbf {
	return &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link, Parent: netlink.HANDLE_ROOT, Handle: netlink.MakeHandle(state.QdiscHandleTBF, 0)},
		Rate:       t.RateBytes,
		Limit:      t.Limit,
		Buffer:     netlink.Xmittime(t.RateBytes, t.Burst),
	}
}

// SetQdisc makes the link's root qdiscs apply tbf (if not nil) with netem
// (if not nil) as its child, or netem alone at the root. An existing qdisc
// of netlab's of the same shape is changed in place (a new rate takes effect
// without a moment unshaped); one of another shape is deleted first. A root
// qdisc that is not netlab's is never touched: ErrQdiscNotOurs.
//
// Equivalent to: `tc -n NS qdisc replace dev LINK root handle 4e4c: tbf
// rate R burst B limit L` (and `... parent 4e4c:1 handle 4e4d: netem ...`).
func (n *NS) SetQdisc(link string, tbf *TBF, netem *Netem) error {
	if tbf == nil && netem == nil {
		return fmt.Errorf("ns %s: set qdisc on %s: nothing to apply", n.name, link)
	}
	if err := n.setQdisc(link, tbf, netem); err != nil {
		return fmt.Errorf("ns %s: set qdisc on %s: %w", n.name, link, err)
	}
	return nil
}

func (n *NS) setQdisc(link string, tbf *TBF, netem *Netem) error {
	l, err := n.link(link)
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	cur, err := n.qdiscs()
	if err != nil {
		return err
	}
	wantRoot := state.QdiscHandleNetem
	if tbf != nil {
		wantRoot = state.QdiscHandleTBF
	}
	if c := cur[link]; c != nil {
		if !c.Ours {
			return fmt.Errorf("%w: %s %x: is someone else's", ErrQdiscNotOurs, c.Kind, c.Handle)
		}
		hadChild := c.Kind == "tbf" && len(c.Impair.NetemFields()) > 0
		if c.Handle != wantRoot || hadChild != (tbf != nil && netem != nil) {
			// Another shape: start from the kernel's default.
			if err := n.qdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Parent: netlink.HANDLE_ROOT,
				Handle: netlink.MakeHandle(c.Handle, 0)}, QdiscType: c.Kind}); err != nil {
				return fmt.Errorf("delete own %s %x: %w", c.Kind, c.Handle, err)
			}
		}
	}
	if tbf == nil {
		return n.qdiscReplace(netemQdisc(idx, netlink.HANDLE_ROOT, netem))
	}
	if err := n.qdiscReplace(tbfQdisc(idx, tbf)); err != nil {
		return fmt.Errorf("tbf: %w", err)
	}
	if netem != nil {
		if err := n.qdiscReplace(netemQdisc(idx, netlink.MakeHandle(state.QdiscHandleTBF, 1), netem)); err != nil {
			return fmt.Errorf("netem under tbf: %w", err)
		}
	}
	return nil
}

// DeleteQdisc removes the link's root qdisc if it is netlab's with that
// handle (the kernel's default comes back); nil when it is already gone, or
// the link is. A qdisc with another handle is left alone: the kernel checks
// the handle given.
//
// Equivalent to: `tc -n NS qdisc del dev LINK root handle H:`.
func (n *NS) DeleteQdisc(link string, major uint16) error {
	if !ourQdisc(major) {
		return fmt.Errorf("ns %s: delete qdisc %x: on %s: %w", n.name, major, link, ErrQdiscNotOurs)
	}
	l, err := n.link(link)
	if errors.Is(err, ErrLinkNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ns %s: delete qdisc on %s: %w", n.name, link, err)
	}
	cur, err := n.qdiscs()
	if err != nil {
		return fmt.Errorf("ns %s: delete qdisc on %s: %w", n.name, link, err)
	}
	c := cur[link]
	if c == nil || c.Handle != major {
		return nil
	}
	if !c.Ours {
		return fmt.Errorf("ns %s: delete qdisc on %s: %w", n.name, link, ErrQdiscNotOurs)
	}
	err = n.qdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_ROOT,
		Handle: netlink.MakeHandle(major, 0)}, QdiscType: c.Kind})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("ns %s: delete qdisc %x: on %s: %w", n.name, major, link, err)
	}
	return nil
}

func (n *NS) qdiscDel(q netlink.Qdisc) error {
	return n.nl(func(h *netlink.Handle) error { return h.QdiscDel(q) })
}

func (n *NS) qdiscReplace(q netlink.Qdisc) error {
	return n.nl(func(h *netlink.Handle) error { return h.QdiscReplace(q) })
}
