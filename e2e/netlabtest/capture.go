package netlabtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/netlab-dev/netlab/internal/capture"
	"github.com/netlab-dev/netlab/topology"
)

// CaptureOption configures Capture.
type CaptureOption func(*captureOptions)

type captureOptions struct {
	filter string
}

// CaptureFilter keeps only the packets a tcpdump filter expression
// (pcap-filter(7), e.g. "tcp port 80") takes; tcpdump compiles it.
func CaptureFilter(expr string) CaptureOption {
	return func(o *captureOptions) { o.filter = expr }
}

// Capture is a packet capture on one lab interface, running from Lab.Capture
// until the test ends (or Stop).
type Capture struct {
	iface capture.Interface
	note  string
	stop  context.CancelFunc
	done  chan struct{}
	err   error // of the capture, once done

	mu      sync.Mutex
	raw     []capture.Packet
	pkts    []Packet
	changed chan struct{} // closed and replaced at every packet and at the end
}

// Packet is one captured packet, decoded by gopacket: Layer and the typed
// accessors (NetworkLayer, TransportLayer) give Ethernet, ARP, IPv4/6,
// ICMPv4/6, TCP and UDP, e.g.
//
//	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
type Packet struct {
	gopacket.Packet
	Time     time.Time
	Iface    string // "ns/iface" as the test named it
	Outgoing bool   // sent by the interface, not received
	line     string
}

// String is the packet in one line, like tcpdump's:
// "blue/veth1 Out IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 1, win 64240, length 0".
func (p Packet) String() string { return p.line }

// TCP returns the packet's TCP header, or nil.
func (p Packet) TCP() *layers.TCP {
	t, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	return t
}

// Capture starts capturing the packets of interface iface of namespace ns
// ("host" for the lab's host side: a bridge's port or the bridge itself;
// names as in the file) and returns at once, the socket open: every packet
// from then on is captured. The capture stops when the test ends; if the
// test failed, the packets are saved as a pcapng file, and the test's log
// says where: in the test's artifact directory under `go test -artifacts`
// (go1.26), else in $NETLAB_CAPTURE_DIR, else in a new directory under
// $TMPDIR that is kept.
//
// Equivalent to: `netlab capture LAB NS/IFACE -w FILE [FILTER]`.
func (l *Lab) Capture(t testing.TB, ns, iface string, opts ...CaptureOption) *Capture {
	t.Helper()
	var o captureOptions
	for _, fn := range opts {
		fn(&o)
	}
	machineNS := l.NS(ns)
	// Inside namespaces interfaces keep the file's names; on the host
	// side they carry the prefix, which comes first there so that a
	// machine interface of the file's name is never taken for the lab's.
	names := []string{iface}
	if !strings.HasPrefix(iface, l.prefix) {
		names = append(names, l.prefix+iface)
		if machineNS == topology.Host {
			names[0], names[1] = names[1], names[0]
		}
	}
	label := strings.TrimPrefix(machineNS, l.prefix) + "/" + iface
	var where capture.Interface
	var note string
	var err error
	for _, name := range names {
		where, note, err = capture.ForLab(l.lab, capture.Interface{NS: machineNS, Name: name, Label: label})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("netlabtest: capture on %s: %v", label, err)
	}
	if note != "" {
		t.Logf("netlabtest: %s", note)
	}
	hs, err := capture.OpenAll([]capture.Interface{where}, o.filter, 0)
	if err != nil {
		t.Fatalf("netlabtest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Capture{iface: hs[0].Interface, note: note, stop: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		err := capture.Run(ctx, hs, 0, c.add)
		c.mu.Lock()
		c.err = err
		close(c.changed)
		c.mu.Unlock()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			c.saveForFailure(t, o.filter)
		}
	})
	return c
}

func (c *Capture) add(p capture.Packet) error {
	dp := Packet{
		Packet:   capture.Decode(p, c.iface.LinkType),
		Time:     p.Time,
		Iface:    c.iface.Label,
		Outgoing: p.Outgoing,
	}
	dp.line = strings.SplitN(capture.Line(p, c.iface), " ", 2)[1]
	c.mu.Lock()
	c.raw = append(c.raw, p)
	c.pkts = append(c.pkts, dp)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// Stop ends the capture; Packets is complete after it. The test's end
// stops it too.
func (c *Capture) Stop() {
	c.stop()
	<-c.done
}

// Err is why the capture ended other than by Stop (a read error), if so.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Packets returns the packets captured so far, in the order they came.
func (c *Capture) Packets() []Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Packet(nil), c.pkts...)
}

// Wait returns the first packet, already captured or still to come, for
// which match is true; it fails the test, listing what was captured, if
// none comes within timeout.
func (c *Capture) Wait(t testing.TB, match func(Packet) bool, timeout time.Duration) Packet {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		c.mu.Lock()
		pkts, changed, err := c.pkts[seen:], c.changed, c.err
		c.mu.Unlock()
		for _, p := range pkts {
			if match(p) {
				return p
			}
		}
		seen += len(pkts)
		select {
		case <-changed:
			select {
			case <-c.done:
				if len(c.Packets()) == seen {
					t.Fatalf("netlabtest: capture on %s ended (%v) without the packet waited for; it has:\n%s", c.iface.Label, err, c.dump())
				}
			default:
			}
		case <-deadline.C:
			t.Fatalf("netlabtest: no packet waited for on %s within %v; captured:\n%s", c.iface.Label, timeout, c.dump())
		}
	}
}

// dump lists the packets, one line each.
func (c *Capture) dump() string {
	var b strings.Builder
	for _, p := range c.Packets() {
		fmt.Fprintf(&b, "  %s %s\n", p.Time.Format("15:04:05.000000"), p)
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}

// WriteFile saves the packets captured so far as a pcapng file.
func (c *Capture) WriteFile(path string) error {
	return c.write(path, "")
}

func (c *Capture) write(path, filter string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := capture.NewWriter(f, capture.Pcapng, []capture.Interface{c.iface}, filter, 0)
	if err != nil {
		f.Close()
		return err
	}
	c.mu.Lock()
	raw := append([]capture.Packet(nil), c.raw...)
	c.mu.Unlock()
	for _, p := range raw {
		if err := w.WritePacket(p); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// saveForFailure writes the packets where a failed test's files are kept
// (see Capture) and logs the path.
func (c *Capture) saveForFailure(t testing.TB, filter string) {
	dir, err := failureDir(t)
	if err != nil {
		t.Logf("netlabtest: capture on %s not saved: %v", c.iface.Label, err)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()+"-"+c.iface.Label) + ".pcapng"
	path := filepath.Join(dir, name)
	if err := c.write(path, filter); err != nil {
		t.Logf("netlabtest: capture on %s not saved: %v", c.iface.Label, err)
		return
	}
	t.Logf("netlabtest: the test failed: %d packets of %s saved to %s (wireshark or tcpdump -r reads it)", len(c.Packets()), c.iface.Label, path)
}

// failureDir is where a failed test's capture goes: the test's artifact
// directory when go test keeps them (-artifacts), else NETLAB_CAPTURE_DIR,
// else a new kept directory under TMPDIR. Not t.TempDir or ArtifactDir
// without -artifacts: those are removed when the test ends.
func failureDir(t testing.TB) (string, error) {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir(), nil
	}
	if d := os.Getenv("NETLAB_CAPTURE_DIR"); d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	return os.MkdirTemp("", "netlab-capture-")
}
