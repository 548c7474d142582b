package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// dialTCP connects to ap from namespace ns and closes the connection at once.
// The whole dial runs inside namespace.Do: the net package creates and
// connects the socket in one call, so the locked thread waits for the
// handshake (at most the timeout; Run bounds how many do so at once).
//
// Equivalent to: `ip netns exec NS nc -z -w TIMEOUT ADDR PORT`.
func dialTCP(ctx context.Context, ns netns.NsHandle, ap netip.AddrPort, o Options) (outcome, error) {
	var dialErr error
	err := namespace.Do(ns, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", ap.String())
		if err != nil {
			dialErr = err
			return nil
		}
		return c.Close()
	})
	if err != nil {
		return outcome{}, err
	}
	switch {
	case dialErr == nil:
		return outcome{got: true, detail: "connected"}, nil
	case errors.Is(dialErr, context.Canceled):
		return outcome{}, dialErr
	case isRefused(dialErr):
		return outcome{detail: "connection refused (host up, port closed)"}, nil
	}
	return outcome{detail: describe(dialErr, o.Timeout)}, nil
}

// udpPayload is what UDP probes send: recognisable in a capture.
var udpPayload = []byte("netlab check\n")

// probeUDP sends up to o.Count datagrams to ap from namespace ns on a
// connected UDP socket (so the kernel reports an ICMP port unreachable as
// ECONNREFUSED) and waits for any reply. Silence is not proof of anything:
// an open port whose service does not answer this payload looks exactly like
// a firewall that drops it, so it counts as not reachable, and Detail says so.
//
// Equivalent to: `ip netns exec NS nc -u -w TIMEOUT ADDR PORT`.
func probeUDP(ctx context.Context, ns netns.NsHandle, ap netip.AddrPort, o Options) (outcome, error) {
	var c *net.UDPConn
	err := namespace.Do(ns, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
		return err
	})
	if err != nil {
		return outcome{}, fmt.Errorf("udp socket: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 2048)
	pc := newPacer(ctx, o)
	var first time.Time
	for {
		now := time.Now()
		if pc.due(now) {
			if _, err := c.Write(udpPayload); err != nil {
				return udpOutcome(err, o)
			}
			if pc.sent == 0 {
				first = now
			}
			pc.sentAt(now)
		}
		if pc.over(now) {
			break
		}
		c.SetReadDeadline(pc.wake())
		if ctx.Err() != nil { // after SetReadDeadline: see ping
			break
		}
		n, err := c.Read(buf)
		if err == nil {
			return outcome{got: true, detail: fmt.Sprintf("reply of %d bytes, %s", n, ms(time.Since(first)))}, nil
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			continue
		}
		return udpOutcome(err, o)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return outcome{}, ctx.Err()
	}
	return outcome{detail: "no reply (udp cannot tell open from filtered)"}, nil
}

func udpOutcome(err error, o Options) (outcome, error) {
	if isRefused(err) {
		return outcome{detail: "closed (port unreachable)"}, nil
	}
	return outcome{detail: describe(err, o.Timeout)}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ms formats a round-trip time like ping does.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// pacer paces a probe: up to Count sends, one every interval, and reads in
// between until the deadline. Ping and the UDP probe share it.
type pacer struct {
	count    int
	interval time.Duration
	deadline time.Time
	sent     int
	nextAt   time.Time
}

func newPacer(ctx context.Context, o Options) *pacer {
	deadline, _ := ctx.Deadline()
	return &pacer{count: o.Count, interval: o.interval(), deadline: deadline}
}

// due says whether the next probe is to be sent now.
func (p *pacer) due(now time.Time) bool { return p.sent < p.count && !now.Before(p.nextAt) }

// sentAt records a probe sent at now.
func (p *pacer) sentAt(now time.Time) {
	p.sent++
	p.nextAt = now.Add(p.interval)
}

// over says whether the time for answers is up.
func (p *pacer) over(now time.Time) bool { return !now.Before(p.deadline) }

// wake is when a read must return: at the deadline, or when the next
// probe is due.
func (p *pacer) wake() time.Time {
	if p.sent < p.count && p.nextAt.Before(p.deadline) {
		return p.nextAt
	}
	return p.deadline
}
