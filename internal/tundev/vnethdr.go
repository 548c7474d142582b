package tundev

import (
	"encoding/binary"
	"fmt"
)

// VnetHdrLen is the size of struct virtio_net_hdr, the prefix of every
// packet read from or written to a queue attached with IFF_VNET_HDR (the
// kernel's default TUNSETVNETHDRSZ).
const VnetHdrLen = 10

// VnetHdr is struct virtio_net_hdr (include/uapi/linux/virtio_net.h): how
// the kernel hands over, or takes, a packet whose checksum is not yet
// filled in or that is a GSO super-packet still to be cut into segments.
// The kernel reads and writes it in the machine's byte order (a device
// made without TUNSETVNETLE/TUNSETVNETBE, as netlab makes them).
type VnetHdr struct {
	Flags   uint8 // VnetHdrNeedsCsum, VnetHdrDataValid
	GSOType uint8 // GSONone, GSOTCPv4, GSOUDP, GSOTCPv6, GSOUDPL4, | GSOECN
	// HdrLen is the length of the headers before the payload that GSO
	// segments; GSOSize the payload of each segment.
	HdrLen, GSOSize uint16
	// CsumStart is where checksumming starts (from the start of the
	// packet, after this header); CsumOffset where the sum goes from there.
	CsumStart, CsumOffset uint16
}

// Flags and GSO types of VnetHdr (VIRTIO_NET_HDR_F_*, VIRTIO_NET_HDR_GSO_*).
const (
	VnetHdrNeedsCsum = 1 // the checksum at CsumStart+CsumOffset is partial: sum from CsumStart on
	VnetHdrDataValid = 2 // the checksum was checked

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
	GSOUDPL4 = 5 // UDP segmentation offload (USO)
	GSOECN   = 0x80
)

// Decode reads the header from the first VnetHdrLen bytes of b.
func (h *VnetHdr) Decode(b []byte) error {
	if len(b) < VnetHdrLen {
		return fmt.Errorf("virtio_net_hdr: %d bytes, want %d", len(b), VnetHdrLen)
	}
	e := binary.NativeEndian
	*h = VnetHdr{Flags: b[0], GSOType: b[1], HdrLen: e.Uint16(b[2:]), GSOSize: e.Uint16(b[4:]),
		CsumStart: e.Uint16(b[6:]), CsumOffset: e.Uint16(b[8:])}
	return nil
}

// Encode writes the header into the first VnetHdrLen bytes of b: a frame
// to write goes after it in the same buffer, so one write(2) sends both.
func (h VnetHdr) Encode(b []byte) error {
	if len(b) < VnetHdrLen {
		return fmt.Errorf("virtio_net_hdr: %d bytes, want %d", len(b), VnetHdrLen)
	}
	e := binary.NativeEndian
	b[0], b[1] = h.Flags, h.GSOType
	e.PutUint16(b[2:], h.HdrLen)
	e.PutUint16(b[4:], h.GSOSize)
	e.PutUint16(b[6:], h.CsumStart)
	e.PutUint16(b[8:], h.CsumOffset)
	return nil
}

// Offload is a set of TUN_F_* bits (include/uapi/linux/if_tun.h; x/sys does
// not define them): what a reader of the device's queues accepts, so what
// the kernel may hand it (partial checksums, GSO super-packets of up to 64
// KiB) instead of finishing the work itself. Only a queue with a
// virtio_net_hdr can learn of either.
type Offload uint

const (
	OffloadCsum   Offload = 0x01 // partial checksums
	OffloadTSO4   Offload = 0x02 // TCP/IPv4 GSO (needs OffloadCsum)
	OffloadTSO6   Offload = 0x04 // TCP/IPv6 GSO (needs OffloadCsum)
	OffloadTSOECN Offload = 0x08 // TCP GSO with ECN
	OffloadUSO4   Offload = 0x20 // UDP/IPv4 GSO (Linux 6.2+)
	OffloadUSO6   Offload = 0x40 // UDP/IPv6 GSO (Linux 6.2+)

	// OffloadGSO is what a reader that copes with any TCP or UDP
	// super-packet takes: checksum, TSO and, where the kernel has it, USO.
	OffloadGSO = OffloadCsum | OffloadTSO4 | OffloadTSO6 | OffloadUSO4 | OffloadUSO6
)
