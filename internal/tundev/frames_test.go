package tundev_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"
)

// A TAP with virtio headers, read and written as a userspace link between
// two TAPs would: a UDP datagram the namespace sends comes out as an
// Ethernet frame behind a header (partial checksum, no GSO), and the same
// frame mirrored (MACs, addresses and ports swapped, the header kept) goes
// back in and reaches the sending socket, the kernel completing the
// checksum the header says is partial. Close wakes a blocked read.
func TestTapFramesWithVnetHdr(t *testing.T) {
	ns, h := newNS(t)
	create(t, h, "tap0", tundev.Spec{Kind: tundev.TAP, VnetHdr: true, Owner: -1, Group: -1})
	var qs []tundev.Queue
	if err := in(h, func() (err error) {
		qs, err = tundev.Attach("tap0", tundev.TAP, tundev.WithVnetHdr(tundev.OffloadCsum))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f, err := qs[0].File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	testkit.Run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.tap0.disable_ipv6=1")
	testkit.Run(t, "ip", "-n", ns, "addr", "add", "10.9.0.1/24", "dev", "tap0")
	testkit.Run(t, "ip", "-n", ns, "link", "set", "tap0", "up")
	testkit.Run(t, "ip", "-n", ns, "neigh", "replace", "10.9.0.2", "lladdr", "02:00:00:00:00:02", "nud", "permanent", "dev", "tap0")

	var c *net.UDPConn
	if err := in(h, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := &net.UDPAddr{IP: net.IPv4(10, 9, 0, 2), Port: 7777}
	if _, err := c.WriteToUDP([]byte("hello"), peer); err != nil {
		t.Fatal(err)
	}

	// The frame: the first IPv4 UDP one to port 7777.
	buf := make([]byte, 65536)
	var hdr tundev.VnetHdr
	var frame []byte
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	for frame == nil {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read from tap0: %v", err)
		}
		if err := hdr.Decode(buf[:n]); err != nil {
			t.Fatal(err)
		}
		fr := buf[tundev.VnetHdrLen:n]
		if len(fr) >= 42 && fr[12] == 0x08 && fr[13] == 0 && fr[23] == 17 && fr[36] == 7777>>8 && fr[37] == 7777&0xff {
			frame = fr
		}
	}
	if hdr.GSOType != tundev.GSONone || hdr.Flags&tundev.VnetHdrNeedsCsum != 0 && (hdr.CsumStart != 34 || hdr.CsumOffset != 6) {
		t.Errorf("header of a small UDP/IPv4 frame: %+v", hdr)
	}
	t.Logf("header %+v", hdr)
	if !bytes.Equal(frame[42:], []byte("hello")) {
		t.Fatalf("payload %q", frame[42:])
	}

	// Mirrored: every swap leaves the checksums' sums as they were.
	swap := func(a, b []byte) {
		tmp := append([]byte(nil), a...)
		copy(a, b)
		copy(b, tmp)
	}
	swap(frame[0:6], frame[6:12])
	swap(frame[26:30], frame[30:34])
	swap(frame[34:36], frame[36:38])
	out := make([]byte, tundev.VnetHdrLen+len(frame))
	if err := hdr.Encode(out); err != nil {
		t.Fatal(err)
	}
	copy(out[tundev.VnetHdrLen:], frame)
	if _, err := f.Write(out); err != nil {
		t.Fatalf("write to tap0: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 100)
	n, from, err := c.ReadFromUDP(got)
	if err != nil || string(got[:n]) != "hello" || from.String() != peer.String() {
		t.Fatalf("mirrored datagram: %q from %v, %v", got[:n], from, err)
	}

	// Through the poller, Close wakes a blocked Read.
	done := make(chan error, 1)
	f.SetReadDeadline(time.Time{})
	go func() {
		_, err := f.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	f.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("blocked Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the blocked Read")
	}
}
