package reflector

import (
	"context"
	"fmt"
)

const (
	// maxBurst is the most packets runQueue reads before it writes them
	// back.
	maxBurst = 32
	// burstArena is the size of runQueue's buffer: room for maxBurst
	// MTU-1500 packets, and always for one packet of any size.
	burstArena = maxBurst*2048 + maxPacket
	// statsBatch is how many reflected packets runQueue counts locally
	// before it adds them to its Stats: two atomic additions per packet,
	// each missing the cache that the kernel's work for the packet has
	// churned, cost as much of the reflector's own CPU time as the rest of
	// the loop.
	statsBatch = 64
)

// runQueue is Run on a TUN queue: the same reflection, read in bursts on a
// queue of plain packets. When a read finds a packet already queued (the
// reflector is behind), runQueue goes on reading while packets are queued,
// up to maxBurst, and then writes them all back. The local stack then gets
// them back to back: a TCP receiver that was asleep is woken once for the
// burst instead of once a packet, and that wake-up (an inter-processor
// interrupt on a VM) cost as much as the reflection itself. When a read had
// to wait, the queue was empty and most likely still is, so that packet
// goes back at once, as fast as a plain read-write loop answers a ping. A
// queue with virtio headers (VnetHdr) is not read in bursts: the kernel
// already hands it TCP in 64 KiB super-packets, one wake-up each, and
// holding one back while reading the next cost 3-6% of a stream pinned to
// its own CPU.
//
// runQueue adds its counts to l.st every statsBatch packets and before it
// waits for a packet, so the Stats lag by at most statsBatch packets while
// they flow and not at all while the queue is idle; drops are counted at
// once.
func runQueue(ctx context.Context, q *Queue, l *reflection) error {
	stop := context.AfterFunc(ctx, func() { q.Close() })
	defer stop()
	if !q.acquire() {
		return nil // closed before we started
	}
	defer q.release()
	defer l.flush()
	dev := pinnedQueue{q}

	arena := make([]byte, burstArena)
	var ends [maxBurst]int
	var more backoff
	for {
		k, err := readBurst(q, arena, &ends, &more, l.flush)
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		start := 0
		for _, end := range ends[:k] {
			if !l.reflect(ctx, dev, arena[start:end]) {
				return nil
			}
			start = align(end)
		}
		if l.packets >= statsBatch {
			l.flush()
		}
	}
}

// readBurst reads one packet from q into arena, waiting for it if need be
// (calling idle first), and then, if it did not wait, more while q has
// them, up to maxBurst and while arena has room for a packet of any size.
// It returns how many it read: packet i is arena[align(ends[i-1]):ends[i]]
// (from 0 for the first). A queue with virtio headers gets no bursts (see
// runQueue). Looking for more costs a failed read when there is none, so
// while bursts keep ending at their first packet (a ping flood on one CPU:
// the reflector finds the kernel's echo reply queued, and nothing after
// it) more spaces out the looks. The caller holds a pin on q.
func readBurst(q *Queue, arena []byte, ends *[maxBurst]int, more *backoff, idle func()) (int, error) {
	n, waited, err := q.read(arena[:maxPacket], idle)
	if err != nil {
		return 0, err
	}
	ends[0] = n
	if waited || q.headerLen > 0 || !more.try() {
		return 1, nil
	}
	k := 1
	for start := align(n); k < maxBurst && start+maxPacket <= len(arena); start = align(ends[k-1]) {
		n, errno := q.readNoWait(arena[start : start+maxPacket])
		if errno != 0 {
			break // empty, or an error the next q.read reports
		}
		ends[k] = start + n
		k++
	}
	if k == 1 {
		more.failed()
	} else {
		more.succeeded()
	}
	return k, nil
}

// align rounds n up to a cache line, where runQueue puts the next packet.
func align(n int) int { return (n + 63) &^ 63 }
