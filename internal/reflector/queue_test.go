package reflector

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seqpacketQueue returns a Queue on one end of a blocking AF_UNIX
// SOCK_SEQPACKET pair and the other end: like a TUN queue, every read
// returns one whole packet, a read blocks until one comes, and a blocked
// read is interrupted by a signal and restarted (SA_RESTART). So the Queue's
// loop and stop path run without root.
func seqpacketQueue(t *testing.T) (*Queue, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := newQueue(fds[0], "test queue", 0)
	t.Cleanup(func() {
		q.Close()
		unix.Close(fds[1])
	})
	return q, fds[1]
}

// peerRecv reads one packet from fd within 5 seconds.
func peerRecv(t *testing.T, fd int) []byte {
	t.Helper()
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("read from the queue's peer: %v", err)
	}
	return buf[:n]
}

// The loop over a real file descriptor: packets are reflected and counted,
// and cancelling the context wakes the read blocked in the kernel.
func TestRunQueueReflectsAndStops(t *testing.T) {
	q, peer := seqpacketQueue(t)
	var st Stats
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, q, &st, nil) }()

	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.200.3.4")
	for i := range 3 {
		p := buildPacket(t, a, b, 17, []byte("packet "+strconv.Itoa(i)))
		if _, err := unix.Write(peer, p); err != nil {
			t.Fatal(err)
		}
		if got, want := peerRecv(t, peer), buildPacket(t, b, a, 17, []byte("packet "+strconv.Itoa(i))); !bytes.Equal(got, want) {
			t.Fatalf("reflected packet\n got %x\nwant %x", got, want)
		}
	}
	unix.Write(peer, []byte{0x99, 1, 2}) // not IP: dropped
	// Let Run block in read(2) again, then stop it.
	time.Sleep(50 * time.Millisecond)
	cancel()
	runStops(t, done, "after cancel")
	if st.Packets.Load() != 3 || st.Drops.Load() != 1 {
		t.Errorf("stats %d packets %d drops, want 3 and 1", st.Packets.Load(), st.Drops.Load())
	}
	if _, err := q.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after stop: %v, want os.ErrClosed", err)
	}
	if _, err := q.Write([]byte{1}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after stop: %v, want os.ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Close wakes a reader blocked in read(2) since long before, and the
// descriptor is closed once that read has returned.
func TestQueueCloseWakesBlockedReader(t *testing.T) {
	q, peer := seqpacketQueue(t)
	res := make(chan error, 1)
	go func() {
		_, err := q.Read(make([]byte, 100))
		res <- err
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-res:
		t.Fatalf("Read returned before Close: %v", err)
	default:
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("blocked Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Read")
	}
	// Our end is closed: the peer reads end-of-file.
	if p := peerRecv(t, peer); len(p) != 0 {
		t.Errorf("peer read %x, want end-of-file", p)
	}
}

// Closing the queue before its reader ever reads: the read returns at once.
func TestQueueClosedBeforeRead(t *testing.T) {
	q, _ := seqpacketQueue(t)
	q.Close()
	done := make(chan error, 1)
	go func() { done <- Run(t.Context(), q, new(Stats), nil) }()
	runStops(t, done, "on a closed queue")
}

// Stress the stop path: Close comes at a random moment of Run's life,
// including before it bound itself and while it writes.
func TestQueueStopRaces(t *testing.T) {
	pkt := buildPacket(t, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.9.9.9"), 17, make([]byte, 64))
	for i := range 200 {
		q, peer := seqpacketQueue(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, q, new(Stats), nil) }()
		for range i % 4 {
			unix.Write(peer, pkt)
		}
		time.Sleep(time.Duration(i%7) * 100 * time.Microsecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Run did not stop", i)
		}
	}
}

// A read error other than closing ends Run with that error; EFAULT (a TUN
// queue shut down under a blocked read) reads as EBADFD, a deleted device.
func TestQueueReadErrors(t *testing.T) {
	q, peer := seqpacketQueue(t)
	if _, err := unix.Write(peer, []byte{0x45}); err != nil {
		t.Fatal(err)
	}
	// A read into memory the kernel may not write: EFAULT.
	_, err := q.Read(badBuffer(t))
	if !errors.Is(err, syscall.EBADFD) || !isClosed(err) {
		t.Errorf("read with EFAULT: %v, want EBADFD (device gone)", err)
	}
}

// badBuffer returns a read-only page: read(2) into it fails with EFAULT.
func badBuffer(t *testing.T) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// runQueues runs Run on every queue and returns a function that waits for
// all of them to return and reports their errors.
func runQueues(t *testing.T, ctx context.Context, qs []*Queue, st *Stats) (wait func(time.Duration) []error) {
	t.Helper()
	errc := make(chan error, len(qs))
	for _, q := range qs {
		go func() { errc <- Run(ctx, q, st, nil) }()
	}
	return func(d time.Duration) []error {
		var errs []error
		deadline := time.After(d)
		for range qs {
			select {
			case err := <-errc:
				errs = append(errs, err)
			case <-deadline:
				t.Fatalf("%d of %d loops still run after %v", len(qs)-len(errs), len(qs), d)
			}
		}
		return errs
	}
}

// Queues on a real multi-queue TUN with virtio headers, in process: ping
// and a TCP transfer (64 KiB GSO packets) are reflected; cancelling stops
// every loop blocked in read(2); loops on new queues stop when the device
// is deleted.
func TestQueuesOnTUN(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	createTUN(t, ns, "refl0", 1500, true, true)
	ip(t, "-n", ns, "addr", "add", "10.0.0.1/8", "dev", "refl0")
	qs, err := OpenQueues(ns, "refl0", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if qs[0].HeaderLen() != VnetHdrLen {
		t.Fatalf("HeaderLen %d, want %d", qs[0].HeaderLen(), VnetHdrLen)
	}
	var st Stats
	ctx, cancel := context.WithCancel(t.Context())
	wait := runQueues(t, ctx, qs, &st)
	ping(t, ns, "10.0.0.41")

	var l net.Listener
	var c net.Conn
	inNamespace(t, ns, func() (err error) {
		if l, err = net.Listen("tcp4", "0.0.0.0:0"); err != nil {
			return err
		}
		c, err = net.DialTimeout("tcp4", "10.77.1.2:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port), 5*time.Second)
		return err
	})
	defer l.Close()
	defer c.Close()
	srv, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	big := bytes.Repeat([]byte("reflected "), 400_000) // 4 MB
	go c.Write(big)
	got := make([]byte, len(big))
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := readFull(srv, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("TCP through the queues: %v", err)
	}
	// Wait until both loops are idle in read(2), then stop them.
	time.Sleep(100 * time.Millisecond)
	cancel()
	for _, err := range wait(5 * time.Second) {
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	}
	if st.Packets.Load() < 10 || st.Bytes.Load() < uint64(len(big)) || st.Drops.Load() != 0 {
		t.Errorf("stats %d packets %d bytes %d drops", st.Packets.Load(), st.Bytes.Load(), st.Drops.Load())
	}
	if st.Bytes.Load()/st.Packets.Load() < 2000 {
		t.Logf("no GSO packets? %d bytes in %d packets", st.Bytes.Load(), st.Packets.Load())
	}

	// New queues; the device goes away under the blocked reads.
	qs, err = OpenQueues(ns, "refl0", 2, true)
	if err != nil {
		t.Fatal(err)
	}
	wait = runQueues(t, t.Context(), qs, new(Stats))
	time.Sleep(100 * time.Millisecond)
	ip(t, "-n", ns, "link", "del", "refl0")
	for _, err := range wait(5 * time.Second) {
		if err != nil {
			t.Errorf("Run after the device was deleted: %v", err)
		}
	}
	for _, q := range qs {
		q.Close()
	}
}
