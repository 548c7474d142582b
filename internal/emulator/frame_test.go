package emulator

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/tundev"
	"github.com/netlab-dev/netlab/topology"
)

// udpFrame builds a virtio_net_hdr and an Ethernet frame holding an IPv4
// UDP datagram with payload; with partial, the UDP checksum holds only the
// pseudo-header's sum and the header says NEEDS_CSUM, as the kernel hands
// a frame to a TAP with checksum offload.
func udpFrame(payload []byte, partial bool) ([]byte, tundev.VnetHdr) {
	ipLen := 20 + 8 + len(payload)
	b := make([]byte, tundev.VnetHdrLen+ethHdrLen+ipLen)
	eth := b[tundev.VnetHdrLen:]
	binary.BigEndian.PutUint16(eth[12:], 0x0800)
	ip := eth[ethHdrLen:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip[:20])))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 1234)
	binary.BigEndian.PutUint16(udp[2:], 5678)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	pseudo := sum(ip[12:20]) + 17 + uint64(8+len(payload))
	h := tundev.VnetHdr{}
	if partial {
		binary.BigEndian.PutUint16(udp[6:], fold(pseudo))
		h = tundev.VnetHdr{Flags: tundev.VnetHdrNeedsCsum, CsumStart: ethHdrLen + 20, CsumOffset: 6}
	} else {
		binary.BigEndian.PutUint16(udp[6:], ^fold(pseudo+sum(udp)))
	}
	h.Encode(b)
	return b, h
}

// udpValid checks a frame's UDP checksum as a receiver does.
func udpValid(b []byte) bool {
	ip := b[tundev.VnetHdrLen+ethHdrLen:]
	udp := ip[20:]
	pseudo := sum(ip[12:20]) + 17 + uint64(len(udp))
	return fold(pseudo+sum(udp)) == 0xffff
}

func TestFinishChecksum(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1471} {
		payload := bytes.Repeat([]byte{0xa5, 0x3c, 0x01}, n)[:n]
		full, _ := udpFrame(payload, false)
		if !udpValid(full) {
			t.Fatalf("%d bytes: the test's own checksum is wrong", n)
		}
		part, h := udpFrame(payload, true)
		if udpValid(part) && n > 0 {
			t.Fatalf("%d bytes: a partial checksum looks valid", n)
		}
		finishChecksum(part, &h)
		if !bytes.Equal(part[tundev.VnetHdrLen:], full[tundev.VnetHdrLen:]) {
			t.Errorf("%d bytes: finished frame differs from one checksummed whole", n)
		}
		var got tundev.VnetHdr
		got.Decode(part)
		if got.Flags != 0 {
			t.Errorf("%d bytes: header flags %#x after finishing", n, got.Flags)
		}
	}
}

// A corrupted frame fails the receiver's checksum, whichever bit of the
// IP packet was flipped past its header, even when it came with a partial
// checksum.
func TestCorrupt(t *testing.T) {
	for _, partial := range []bool{false, true} {
		for bit := 20 * 8; bit < (20+8+50)*8; bit += 13 {
			b, h := udpFrame(bytes.Repeat([]byte("x"), 50), partial)
			corrupt(b, &h, bit)
			if udpValid(b) {
				t.Errorf("partial %v, bit %d: checksum still valid", partial, bit)
			}
		}
	}
}

func TestFrameSizes(t *testing.T) {
	b, h := udpFrame(make([]byte, 1000), false)
	if size, region := frameSizes(b, &h); size != 1028 || region != 1028 {
		t.Errorf("plain frame: size %d region %d, want 1028 1028", size, region)
	}
	// A TCP super-frame of 10,000 bytes of payload cut in 1448-byte
	// segments: 7 segments, each with its 20+32 bytes of headers.
	g := make([]byte, tundev.VnetHdrLen+ethHdrLen+20+32+10000)
	eth := g[tundev.VnetHdrLen:]
	eth[ethHdrLen+20+12] = 8 << 4 // data offset 32 bytes
	gh := tundev.VnetHdr{Flags: tundev.VnetHdrNeedsCsum, GSOType: tundev.GSOTCPv4, GSOSize: 1448, CsumStart: ethHdrLen + 20, CsumOffset: 16}
	if size, region := frameSizes(g, &gh); size != 10000+7*52 || region != 0 {
		t.Errorf("super-frame: size %d region %d, want %d 0", size, region, 10000+7*52)
	}
}

func TestParams(t *testing.T) {
	im := topology.Impair{Delay: 20 * time.Millisecond, Jitter: time.Millisecond, Distribution: "normal", Rate: 10e6, LimitBytes: 50000,
		GE: topology.GilbertElliott{P: 1, R: 25, LossBad: 100}, Duplicate: 1}
	p, err := Params(im, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Delay != im.Delay || p.Distribution != "normal" || p.Rate != 10e6 || p.LimitBytes != 50000 || p.GE.R != 25 || p.Duplicate != 1 {
		t.Errorf("params %+v", p)
	}
	tr := topology.Impair{Trace: topology.TraceRef{Name: "x.trace", Sum: "abc"}}
	if _, err := Params(tr, nil); err == nil || !strings.Contains(err.Error(), "not in the model file") {
		t.Errorf("a trace without its entries: %v", err)
	}
	p, err = Params(tr, map[string][]uint32{"abc": {1, 2, 2}})
	if err != nil || p.Trace == nil || len(p.Trace.MS) != 3 || p.Trace.Sum != "abc" {
		t.Errorf("trace params %+v, %v", p.Trace, err)
	}
}

func TestModelFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.json")
	m := &ModelFile{Generation: 3, A: topology.Impair{Delay: time.Second}, B: topology.Impair{Loss: 5}, Traces: map[string][]uint32{"s": {1}}}
	if err := WriteModel(path, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadModel(path)
	if err != nil || got.Generation != 3 || got.A != m.A || got.B != m.B || len(got.Traces["s"]) != 1 {
		t.Errorf("read back %+v, %v", got, err)
	}
}
