package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"strings"
)

// The file formats are written here, not through gopacket's pcapgo: pcapgo
// needs gopacket's layers package, whose initialisation fills protocol
// tables of 64 Ki entries each, and as every netlab process (up, down, each
// lab's reflector) is one binary, each paid for it: 8 MB of memory and 6 ms
// of start-up more, measured (docs/capture.md). The formats are small and
// fixed (pcap-savefile(5); pcapng, RFC draft-ietf-opsawg-pcapng), and the
// tests read what is written with gopacket's readers and with tcpdump.

// LinkType is a pcap link type (LINKTYPE_*): what a packet starts with.
type LinkType uint16

const (
	LinkTypeEthernet LinkType = 1   // LINKTYPE_ETHERNET
	LinkTypeRaw      LinkType = 101 // LINKTYPE_RAW: bare IPv4 or IPv6
)

func (lt LinkType) String() string {
	switch lt {
	case LinkTypeEthernet:
		return "Ethernet"
	case LinkTypeRaw:
		return "Raw"
	}
	return fmt.Sprintf("LinkType(%d)", uint16(lt))
}

// Writer writes packets to a capture file.
type Writer interface {
	WritePacket(Packet) error
	// Flush writes out what is buffered; after it the file is complete
	// and valid up to the last packet.
	Flush() error
}

// Format is a capture file format.
type Format string

const (
	// Pcapng names each packet's interface (one Interface Description
	// Block per interface), so several interfaces go into one file.
	Pcapng Format = "pcapng"
	// Pcap is the classic format: one link type per file, no interface.
	Pcap Format = "pcap"
)

// FormatOf picks the format by the file name: .pcap is pcap, anything else
// (.pcapng, "-" for standard output) pcapng.
func FormatOf(name string) Format {
	if strings.HasSuffix(name, ".pcap") {
		return Pcap
	}
	return Pcapng
}

// NewWriter returns a writer of the format for the interfaces (packets'
// Iface numbers index ifaces). filter is recorded in pcapng's interface
// blocks.
func NewWriter(w io.Writer, f Format, ifaces []Interface, filter string, snapLen int) (Writer, error) {
	if snapLen <= 0 {
		snapLen = DefaultSnapLen
	}
	switch f {
	case Pcapng:
		return newPcapng(w, ifaces, filter, snapLen)
	case Pcap:
		return newPcap(w, ifaces, snapLen)
	}
	return nil, fmt.Errorf("unknown capture format %q (pcapng or pcap)", f)
}

// Both formats are written little endian on every machine: a reader tells
// the byte order from the magic number, so the file is valid everywhere.
var order = binary.LittleEndian

// pcapng block types and option codes.
const (
	blockSHB = 0x0A0D0D0A // Section Header Block
	blockIDB = 0x00000001 // Interface Description Block
	blockEPB = 0x00000006 // Enhanced Packet Block

	optEnd        = 0
	optSHBHardw   = 2
	optSHBOS      = 3
	optSHBUserApp = 4
	optIfName     = 2
	optIfDesc     = 3
	optIfTSResol  = 9
	optIfFilter   = 11
	optIfOS       = 12
	optEPBFlags   = 2

	// epb_flags' direction bits.
	epbInbound  = 1
	epbOutbound = 2
)

// pcapngWriter writes one section: its header, one interface block per
// interface, then enhanced packet blocks with nanosecond timestamps and
// each packet's direction.
type pcapngWriter struct {
	w       *bufio.Writer
	ifaces  int
	scratch []byte
}

func newPcapng(w io.Writer, ifaces []Interface, filter string, snapLen int) (Writer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcapng: no interface")
	}
	pw := &pcapngWriter{w: bufio.NewWriterSize(w, 1<<16), ifaces: len(ifaces)}
	var body []byte
	body = order.AppendUint32(body, 0x1A2B3C4D) // byte-order magic
	body = order.AppendUint16(body, 1)          // major version
	body = order.AppendUint16(body, 0)          // minor version
	body = order.AppendUint64(body, ^uint64(0)) // section length: not given
	body = appendOpt(body, optSHBHardw, []byte(runtime.GOARCH))
	body = appendOpt(body, optSHBOS, []byte(runtime.GOOS))
	body = appendOpt(body, optSHBUserApp, []byte("netlab capture"))
	body = appendOpt(body, optEnd, nil)
	pw.block(blockSHB, body)
	for _, i := range ifaces {
		desc := i.Description
		if desc == "" {
			desc = fmt.Sprintf("%s in network namespace %s", i.Name, i.NS)
		}
		body = body[:0]
		body = order.AppendUint16(body, uint16(i.LinkType))
		body = order.AppendUint16(body, 0) // reserved
		body = order.AppendUint32(body, uint32(snapLen))
		body = appendOpt(body, optIfName, []byte(i.Label))
		body = appendOpt(body, optIfDesc, []byte(desc))
		body = appendOpt(body, optIfTSResol, []byte{9}) // 10^-9 s
		if filter != "" {
			// The first byte says the filter is in libpcap's syntax.
			body = appendOpt(body, optIfFilter, append([]byte{0}, filter...))
		}
		body = appendOpt(body, optIfOS, []byte(runtime.GOOS))
		body = appendOpt(body, optEnd, nil)
		pw.block(blockIDB, body)
	}
	// Out with the header now: a reader of a pipe (wireshark -k -i -)
	// learns the interfaces before the first packet.
	if err := pw.w.Flush(); err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	return pw, nil
}

// appendOpt appends an option: code, length, value padded to 32 bits.
func appendOpt(b []byte, code uint16, val []byte) []byte {
	b = order.AppendUint16(b, code)
	b = order.AppendUint16(b, uint16(len(val)))
	b = append(b, val...)
	return append(b, make([]byte, pad4(len(val)))...)
}

func pad4(n int) int { return (4 - n%4) % 4 }

// block writes a block: type, total length, body, total length again. A
// write error sticks to the buffered writer, so the last one tells.
func (w *pcapngWriter) block(typ uint32, body []byte) error {
	total := uint32(12 + len(body))
	var hdr [8]byte
	order.PutUint32(hdr[0:4], typ)
	order.PutUint32(hdr[4:8], total)
	w.w.Write(hdr[:])
	w.w.Write(body)
	_, err := w.w.Write(hdr[4:8])
	return err
}

func (w *pcapngWriter) WritePacket(p Packet) error {
	if p.Iface < 0 || p.Iface >= w.ifaces {
		return fmt.Errorf("pcapng: packet of interface %d, the file has %d", p.Iface, w.ifaces)
	}
	ts := uint64(p.Time.UnixNano())
	flags := uint32(epbInbound)
	if p.Outgoing {
		flags = epbOutbound
	}
	b := w.scratch[:0]
	b = order.AppendUint32(b, uint32(p.Iface))
	b = order.AppendUint32(b, uint32(ts>>32))
	b = order.AppendUint32(b, uint32(ts))
	b = order.AppendUint32(b, uint32(len(p.Data)))
	b = order.AppendUint32(b, uint32(max(p.Length, len(p.Data))))
	b = append(b, p.Data...)
	b = append(b, make([]byte, pad4(len(p.Data)))...)
	b = appendOpt(b, optEPBFlags, order.AppendUint32(nil, flags))
	b = appendOpt(b, optEnd, nil)
	w.scratch = b
	return w.block(blockEPB, b)
}

func (w *pcapngWriter) Flush() error { return w.w.Flush() }

// pcapWriter writes classic pcap with nanosecond timestamps.
type pcapWriter struct {
	w *bufio.Writer
}

func newPcap(w io.Writer, ifaces []Interface, snapLen int) (Writer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcap: no interface")
	}
	for _, i := range ifaces[1:] {
		if i.LinkType != ifaces[0].LinkType {
			return nil, fmt.Errorf("pcap: %s (%s) and %s (%s) differ in link type, which one pcap file cannot hold: write pcapng", ifaces[0].Label, ifaces[0].LinkType, i.Label, i.LinkType)
		}
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var hdr []byte
	hdr = order.AppendUint32(hdr, 0xa1b23c4d) // magic: nanosecond timestamps
	hdr = order.AppendUint16(hdr, 2)          // version 2.4
	hdr = order.AppendUint16(hdr, 4)
	hdr = order.AppendUint32(hdr, 0) // this zone
	hdr = order.AppendUint32(hdr, 0) // sigfigs
	hdr = order.AppendUint32(hdr, uint32(snapLen))
	hdr = order.AppendUint32(hdr, uint32(ifaces[0].LinkType))
	bw.Write(hdr)
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	return &pcapWriter{w: bw}, nil
}

func (w *pcapWriter) WritePacket(p Packet) error {
	var hdr [16]byte
	order.PutUint32(hdr[0:4], uint32(p.Time.Unix()))
	order.PutUint32(hdr[4:8], uint32(p.Time.Nanosecond()))
	order.PutUint32(hdr[8:12], uint32(len(p.Data)))
	order.PutUint32(hdr[12:16], uint32(max(p.Length, len(p.Data))))
	w.w.Write(hdr[:])
	_, err := w.w.Write(p.Data)
	return err
}

func (w *pcapWriter) Flush() error { return w.w.Flush() }
