package reflector

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// queuePackets writes n packets of size bytes to the queue's peer; packet
// i is filled with byte i.
func queuePackets(t *testing.T, peer, n, size int) {
	t.Helper()
	for i := range n {
		if _, err := unix.Write(peer, bytes.Repeat([]byte{byte(i)}, size)); err != nil {
			t.Fatal(err)
		}
	}
}

// pinnedSeqpacket is seqpacketQueue pinned for the test, as runQueue pins
// its queue, with an arena for readBurst.
func pinnedSeqpacket(t *testing.T) (*Queue, int, []byte) {
	t.Helper()
	q, peer := seqpacketQueue(t)
	if !q.acquire() {
		t.Fatal("queue closed")
	}
	t.Cleanup(q.release)
	return q, peer, make([]byte, burstArena)
}

// checkBurst calls readBurst and checks that it read want packets of size
// bytes, filled with first, first+1, ...
func checkBurst(t *testing.T, q *Queue, arena []byte, want, size, first int) {
	t.Helper()
	var ends [maxBurst]int
	k, err := readBurst(q, arena, &ends, new(backoff), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k != want {
		t.Fatalf("burst of %d packets, want %d", k, want)
	}
	start := 0
	for i, end := range ends[:k] {
		if got, want := arena[start:end], bytes.Repeat([]byte{byte(first + i)}, size); !bytes.Equal(got, want) {
			t.Fatalf("packet %d of the burst: %d bytes starting %x, want %d bytes of %x", i, len(got), got[:min(len(got), 4)], size, want[0])
		}
		start = align(end)
	}
}

// Queued packets are read in bursts of at most maxBurst, each packet whole
// and in order, while the arena has room for a packet of any size.
func TestReadBurst(t *testing.T) {
	q, peer, arena := pinnedSeqpacket(t)

	queuePackets(t, peer, maxBurst+8, 1000)
	checkBurst(t, q, arena, maxBurst, 1000, 0)
	checkBurst(t, q, arena, 8, 1000, maxBurst)

	// 30000-byte packets: after three, fewer than maxPacket bytes are left.
	queuePackets(t, peer, 5, 30000)
	checkBurst(t, q, arena, 3, 30000, 0)
	checkBurst(t, q, arena, 2, 30000, 3)

	// A queue with virtio headers reads one packet at a time.
	q.headerLen = VnetHdrLen
	queuePackets(t, peer, 2, 1000)
	checkBurst(t, q, arena, 1, 1000, 0)
	checkBurst(t, q, arena, 1, 1000, 1)
}

// A read that had to wait ends its burst at one packet (the queue was
// empty, so the packet goes back at once). The queue having been empty, the
// next read goes straight to read(2) through the scheduler (Queue.read's
// back-off), which may wait too, so it reads one packet; the one after
// that finds a packet queued without waiting and reads the rest in a burst.
func TestReadBurstAfterWait(t *testing.T) {
	q, peer, arena := pinnedSeqpacket(t)
	written := make(chan struct{})
	go func() {
		defer close(written)
		// Once the reader blocks in read(2), so that it waited.
		for q.blocked.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		for i := range 5 {
			if _, err := unix.Write(peer, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
				t.Error(err)
			}
		}
	}()
	checkBurst(t, q, arena, 1, 100, 0)
	<-written
	checkBurst(t, q, arena, 1, 100, 1)
	checkBurst(t, q, arena, 3, 100, 2)
}

// Run on a queue reflects a burst in order, and its counts reach the Stats
// while it runs, once the queue is idle, not only when it stops.
func TestRunQueueBurstAndIdleStats(t *testing.T) {
	q, peer := seqpacketQueue(t)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.200.3.4")
	const n = 3*maxBurst + 5
	for i := range n {
		if _, err := unix.Write(peer, buildPacket(t, a, b, 17, []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	var st Stats
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, q, &st, nil) }()
	for i := range n {
		if got, want := peerRecv(t, peer), buildPacket(t, b, a, 17, []byte{byte(i)}); !bytes.Equal(got, want) {
			t.Fatalf("reply %d\n got %x\nwant %x", i, got, want)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); st.Packets.Load() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats show %d packets while Run idles, want %d", st.Packets.Load(), n)
		}
	}
	cancel()
	runStops(t, done, "after cancel")
}

// A burst that ends at its first packet makes readBurst skip looking for
// more the next time (the look costs a failed read), and look again after.
func TestReadBurstBacksOff(t *testing.T) {
	q, peer, arena := pinnedSeqpacket(t)
	var ends [maxBurst]int
	var more backoff
	burst := func() int {
		t.Helper()
		k, err := readBurst(q, arena, &ends, &more, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	queuePackets(t, peer, 1, 100)
	if k := burst(); k != 1 {
		t.Fatalf("burst of %d, want 1", k)
	}
	queuePackets(t, peer, 3, 100)
	if k := burst(); k != 1 {
		t.Fatalf("burst of %d right after one that found nothing more, want 1 (no look)", k)
	}
	if k := burst(); k != 2 {
		t.Fatalf("burst of %d, want 2", k)
	}
}
