package reflector

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestRunReflectsAndCounts(t *testing.T) {
	dev := NewChannelDevice()
	var st Stats
	var mu sync.Mutex
	var lines []string
	logf := func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, dev, &st, logf) }()

	a, b := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd2a:cd2c:8bc4:11ff::23")
	p6 := buildPacket(t, a, b, 17, make([]byte, 24)) // 40+8+24 = 72 bytes
	p4 := buildPacket(t, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.200.3.4"), 6, []byte("hello"))
	bad := [][]byte{{}, {0x45, 0, 0}, {0x99, 1, 2, 3}, p4[:len(p4)-2]}

	send := func(p []byte) {
		select {
		case dev.Inbound <- p:
		case <-time.After(5 * time.Second):
			t.Fatal("Run does not read")
		}
	}
	recv := func() []byte {
		select {
		case p := <-dev.Outbound:
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("Run does not write")
		}
		return nil
	}
	send(p6)
	if got, want := recv(), buildPacket(t, b, a, 17, make([]byte, 24)); !bytes.Equal(got, want) {
		t.Errorf("reflected IPv6 packet\n got %x\nwant %x", got, want)
	}
	for _, p := range bad {
		send(p)
	}
	send(p4)
	if got, want := recv(), buildPacket(t, netip.MustParseAddr("10.200.3.4"), netip.MustParseAddr("10.0.0.1"), 6, []byte("hello")); !bytes.Equal(got, want) {
		t.Errorf("reflected IPv4 packet\n got %x\nwant %x", got, want)
	}
	select {
	case p := <-dev.Outbound:
		t.Errorf("bad packet written back: %x", p)
	default:
	}
	cancel()
	runStops(t, done, "after cancel")
	if got, want := st.Packets.Load(), uint64(2); got != want {
		t.Errorf("Packets = %d, want %d", got, want)
	}
	if got, want := st.Bytes.Load(), uint64(len(p6)+len(p4)); got != want {
		t.Errorf("Bytes = %d, want %d", got, want)
	}
	if got, want := st.Drops.Load(), uint64(len(bad)); got != want {
		t.Errorf("Drops = %d, want %d", got, want)
	}
	want := []string{
		"72: fe80::1->fd2a:cd2c:8bc4:11ff::23",
		"0: drop", "3: drop", "4: drop", "43: drop",
		"45: 10.0.0.1->10.200.3.4",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(lines, want) {
		t.Errorf("log lines\n got %q\nwant %q", lines, want)
	}
}

func TestRunStopsWhenDeviceCloses(t *testing.T) {
	dev := NewChannelDevice()
	done := make(chan error, 1)
	go func() { done <- Run(t.Context(), dev, new(Stats), nil) }()
	dev.Close()
	runStops(t, done, "after Close")
}

// errDevice fails every Read with err.
type errDevice struct{ err error }

func (d errDevice) Read([]byte) (int, error)  { return 0, d.err }
func (d errDevice) Write([]byte) (int, error) { return 0, d.err }
func (d errDevice) Close() error              { return nil }

func TestRunReturnsReadError(t *testing.T) {
	boom := errors.New("boom")
	if err := Run(t.Context(), errDevice{boom}, new(Stats), nil); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
}

// The virtio_net_hdr in front of each packet is written back unchanged.
func TestRunVnetHdrKeepsHeader(t *testing.T) {
	dev := NewChannelDevice()
	var st Stats
	done := make(chan error, 1)
	go func() { done <- Run(t.Context(), VnetHdr(dev), &st, nil) }()
	hdr := []byte{1, 4, 0x42, 0x05, 0xa8, 0x05, 0x22, 0, 0x10, 0} // NEEDS_CSUM, TCPV4, ...
	ip := buildPacket(t, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9"), 6, make([]byte, 3000))
	dev.Inbound <- append(bytes.Clone(hdr), ip...)
	got := <-dev.Outbound
	want := append(bytes.Clone(hdr), buildPacket(t, netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("10.0.0.1"), 6, make([]byte, 3000))...)
	if !bytes.Equal(got, want) {
		t.Errorf("vnet packet not reflected with header kept")
	}
	dev.Inbound <- hdr[:5] // shorter than the header
	dev.Inbound <- hdr     // header only, no packet
	dev.Inbound <- ip      // no header: bytes 10.. are not an IP packet
	dev.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st.Packets.Load() != 1 || st.Bytes.Load() != uint64(len(ip)) || st.Drops.Load() != 3 {
		t.Errorf("stats %d/%d/%d, want 1/%d/3", st.Packets.Load(), st.Bytes.Load(), st.Drops.Load(), len(ip))
	}
}

func TestRunAllocs(t *testing.T) {
	// One packet through the loop on a device that hands out the same
	// packet forever allocates nothing.
	pkt := buildPacket(t, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9"), 17, make([]byte, 100))
	d := &loopDevice{pkt: pkt, left: 1000}
	allocs := testing.AllocsPerRun(1, func() {
		d.left = 1000
		Run(context.Background(), d, new(Stats), nil)
	})
	// Run's buffer, the AfterFunc and the Stats: a handful, not per packet.
	if allocs > 10 {
		t.Errorf("Run allocated %v times for 1000 packets", allocs)
	}
}

// loopDevice returns pkt left times, then os.ErrClosed-like io.EOF.
type loopDevice struct {
	pkt  []byte
	left int
}

func (d *loopDevice) Read(b []byte) (int, error) {
	if d.left == 0 {
		return 0, errClosedForTest
	}
	d.left--
	return copy(b, d.pkt), nil
}
func (d *loopDevice) Write(b []byte) (int, error) { return len(b), nil }
func (d *loopDevice) Close() error                { return nil }

var errClosedForTest = os.ErrClosed

// BenchmarkRun is the loop's own cost per packet, on a device whose Read
// only copies a 1400-byte packet: about 25 ns on the bench VM, against 5-17
// us per packet through a TUN (bench/reflector/bench.sh). (In this hot loop
// the atomic additions to Stats cost next to nothing; on a TUN queue, after
// the kernel's work for each packet, they did not, so runQueue counts in
// batches.)
func BenchmarkRun(b *testing.B) {
	pkt := buildPacket(b, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9"), 17, make([]byte, 1372))
	d := &loopDevice{pkt: pkt, left: b.N}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	Run(context.Background(), d, new(Stats), nil)
}

// runStops waits for Run, whose result comes on done, to return nil; what
// says what should have stopped it ("after cancel").
func runStops(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run %s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Run did not return %s within 5 s", what)
	}
}
