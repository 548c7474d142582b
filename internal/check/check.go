// Package check runs a lab's reachability expectations (the topology file's
// `expect:` list, run by `netlab check LAB`): ICMP echo, TCP connect and UDP
// probes, each sent from inside a lab namespace, concurrently, and reported
// as a table.
//
// Every probe's socket is created inside its From namespace through
// namespace.Do and stays bound there; sending and waiting happen afterwards on
// ordinary goroutines (a TCP connect waits inside Do, on its locked thread,
// because the net package creates and connects the socket in one call).
//
// The runner never decides what is "inside the lab": the caller resolves the
// probes. It only refuses From namespaces that do not exist.
//
// Equivalent to, per probe: `ip netns exec FROM ping -c COUNT -W TIMEOUT ADDR`,
// `ip netns exec FROM nc -z -w TIMEOUT ADDR PORT`, `... nc -u ...`.
package check

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// Kind is what a probe sends.
type Kind string

const (
	// Ping is ICMP (IPv4) or ICMPv6 echo; reachable = at least one reply.
	Ping Kind = "ping"
	// TCP is a TCP connect; reachable = connected. A refusal (RST) means
	// the host answered but the port is closed: not reachable.
	TCP Kind = "tcp"
	// UDP sends datagrams; reachable = any reply. An ICMP port unreachable
	// means closed; silence is unknown (open or filtered) and counts as not
	// reachable.
	UDP Kind = "udp"
)

// Probe is one resolved expectation.
type Probe struct {
	Index int        // position in the file's list (0-based; Table shows Index+1)
	From  string     // namespace name on the machine ("host" = root namespace)
	To    string     // as written (a namespace name or an address), for display
	Addr  netip.Addr // resolved address to probe
	Kind  Kind
	Port  int  // tcp/udp
	Want  bool // expected reachability
}

// Result is a probe's outcome.
type Result struct {
	Probe
	Got  bool // reachable?
	Pass bool // Got == Want, and the probe ran (Err == nil)
	// Detail says why, e.g. "2/2 replies, 0.04 ms", "connection refused",
	// "timeout after 2s", "no route to host", "no namespace blue".
	Detail string
	// Err is set when the probe could not run at all (no such namespace,
	// invalid probe, socket not permitted, canceled). Such a probe never
	// passes, whatever Want says: "could not look" is not "unreachable".
	Err      error
	Duration time.Duration
}

// Options tunes Run. Zero values take the defaults.
type Options struct {
	Timeout  time.Duration // per probe; default 2s
	Parallel int           // probes in flight; default 8
	Count    int           // echo requests (and UDP datagrams) per probe; default 2
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Count <= 0 {
		o.Count = 2
	}
	o.Count = min(o.Count, 1<<16-1) // echo sequence numbers are 16 bits
	return o
}

// interval is the gap between echo requests (or UDP datagrams) of one
// probe: short, so that Count of them fit well within the timeout.
func (o Options) interval() time.Duration {
	return min(100*time.Millisecond, o.Timeout/time.Duration(2*o.Count))
}

// Run runs the probes, at most o.Parallel at a time, and returns one Result
// per probe in the order of probes. When ctx ends, running probes stop and
// the rest are not started; both come back with Err set.
func Run(ctx context.Context, probes []Probe, o Options) []Result {
	o = o.withDefaults()
	results := make([]Result, len(probes))
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i, p := range probes {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			results[i] = failed(p, fmt.Errorf("not run: %w", ctx.Err()), 0)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i] = runOne(ctx, p, o)
		})
	}
	wg.Wait()
	return results
}

// outcome is what a probe function found out.
type outcome struct {
	got    bool
	detail string
}

func runOne(ctx context.Context, p Probe, o Options) Result {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return failed(p, fmt.Errorf("not run: %w", err), 0)
	}
	if err := validate(p); err != nil {
		return failed(p, err, 0)
	}
	if !namespace.Exists(p.From) {
		return failed(p, fmt.Errorf("no namespace %s", p.From), time.Since(start))
	}
	ns, err := namespace.Open(p.From)
	if err != nil {
		return failed(p, err, time.Since(start))
	}
	defer ns.Close()

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var out outcome
	switch p.Kind {
	case Ping:
		out, err = ping(ctx, ns, p.Addr, o)
	case TCP:
		out, err = dialTCP(ctx, ns, netip.AddrPortFrom(p.Addr, uint16(p.Port)), o)
	case UDP:
		out, err = probeUDP(ctx, ns, netip.AddrPortFrom(p.Addr, uint16(p.Port)), o)
	}
	d := time.Since(start)
	if err != nil {
		return failed(p, fmt.Errorf("%s %s: %w", p.From, p.Kind, err), d)
	}
	return Result{Probe: p, Got: out.got, Pass: out.got == p.Want, Detail: out.detail, Duration: d}
}

func validate(p Probe) error {
	switch p.Kind {
	case Ping:
	case TCP, UDP:
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("%s probe: invalid port %d", p.Kind, p.Port)
		}
	default:
		return fmt.Errorf("unknown probe kind %q", p.Kind)
	}
	if !p.Addr.IsValid() {
		return fmt.Errorf("%s probe to %q: no address", p.Kind, p.To)
	}
	return nil
}

// failed is the Result of a probe that could not run; Detail is the error.
func failed(p Probe, err error, d time.Duration) Result {
	return Result{Probe: p, Detail: err.Error(), Err: err, Duration: d}
}

// describe turns a network error from a probe into Detail text: the errno's
// own words ("connection refused", "no route to host", "network is
// unreachable") or "timeout after T".
func describe(err error, timeout time.Duration) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT):
		return "timeout after " + timeout.String()
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

// isRefused reports whether err is a refusal: a TCP RST or an ICMP port
// unreachable reported on a connected UDP socket.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
