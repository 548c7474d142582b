package emulator

import (
	"encoding/binary"

	"github.com/netlab-dev/netlab/internal/tundev"
)

// ethHdrLen is an Ethernet header without a VLAN tag: what comes before the
// IP packet the model counts.
const ethHdrLen = 14

// maxFrame is the largest read from a TAP: a GSO super-frame of 64 KiB,
// its Ethernet header and the virtio_net_hdr in front.
const maxFrame = tundev.VnetHdrLen + ethHdrLen + 65535 + 256

// frameSizes returns what the model counts of a frame read from a TAP (the
// virtio_net_hdr first): the IP bytes it puts on the wire, every segment's
// headers included for a GSO super-frame, and the bytes a corruption may
// touch (its IP packet; none for a super-frame, whose segments the
// receiving kernel checksums itself).
func frameSizes(pkt []byte, h *tundev.VnetHdr) (size, region int) {
	eth := pkt[tundev.VnetHdrLen:]
	ip := len(eth) - ethHdrLen
	if ip < 0 {
		return 0, 0
	}
	if h.GSOType&^tundev.GSOECN == tundev.GSONone || h.GSOSize == 0 {
		return ip, ip
	}
	hdrs := l4HeaderEnd(eth, h)
	if hdrs <= ethHdrLen || hdrs >= len(eth) {
		return ip, 0
	}
	payload := len(eth) - hdrs
	segs := (payload + int(h.GSOSize) - 1) / int(h.GSOSize)
	return payload + segs*(hdrs-ethHdrLen), 0
}

// l4HeaderEnd is where a GSO frame's payload starts: after the TCP header
// (its data offset) or the UDP one, from the checksum's start (the L4
// header, which the kernel always gives a GSO frame).
func l4HeaderEnd(eth []byte, h *tundev.VnetHdr) int {
	start := int(h.CsumStart)
	switch h.GSOType &^ tundev.GSOECN {
	case tundev.GSOTCPv4, tundev.GSOTCPv6:
		if start+13 > len(eth) {
			return 0
		}
		return start + int(eth[start+12]>>4)*4
	case tundev.GSOUDP, tundev.GSOUDPL4:
		return start + 8
	}
	return 0
}

// finishChecksum fills in a partial checksum (VnetHdrNeedsCsum: the kernel
// left the ones'-complement sum of the pseudo-header at CsumStart +
// CsumOffset, for whoever sends the frame to finish) and clears the
// header's flags, so the receiver checks the sum itself: what a corruption
// must do first, or the receiver would take the damaged frame as checked
// (netem does the same, skb_checksum_help before it flips a bit).
func finishChecksum(pkt []byte, h *tundev.VnetHdr) {
	eth := pkt[tundev.VnetHdrLen:]
	if h.Flags&tundev.VnetHdrNeedsCsum != 0 {
		start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
		if start < len(eth) && at+2 <= len(eth) {
			binary.BigEndian.PutUint16(eth[at:], ^fold(sum(eth[start:])))
		}
	}
	h.Flags = 0
	h.Encode(pkt)
}

// sum is the ones'-complement sum of b as 16-bit big-endian words, not
// folded.
func sum(b []byte) uint64 {
	var s uint64
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold folds a sum to 16 bits with end-around carry.
func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// corrupt flips bit n of the frame's IP packet, after finishing its
// checksum.
func corrupt(pkt []byte, h *tundev.VnetHdr, bit int) {
	finishChecksum(pkt, h)
	ip := pkt[tundev.VnetHdrLen+ethHdrLen:]
	if bit/8 < len(ip) {
		ip[bit/8] ^= 1 << (bit % 8)
	}
}
