package capture

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/pcapgo"
)

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

// pcapngWriter writes pcapng through gopacket's pcapgo.NgWriter.
type pcapngWriter struct{ w *pcapgo.NgWriter }

func newPcapng(w io.Writer, ifaces []Interface, filter string, snapLen int) (Writer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcapng: no interface")
	}
	ngIface := func(i Interface) pcapgo.NgInterface {
		desc := i.Description
		if desc == "" {
			desc = fmt.Sprintf("%s in network namespace %s", i.Name, i.NS)
		}
		return pcapgo.NgInterface{
			Name:                i.Label,
			Description:         desc,
			Filter:              filter,
			OS:                  runtime.GOOS,
			LinkType:            i.LinkType,
			SnapLength:          uint32(snapLen),
			TimestampResolution: 9,
		}
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "netlab capture",
	}}
	ng, err := pcapgo.NewNgWriterInterface(w, ngIface(ifaces[0]), opts)
	if err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	for _, i := range ifaces[1:] {
		if _, err := ng.AddInterface(ngIface(i)); err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
	}
	// Out with the header now: a reader of a pipe (wireshark -k -i -)
	// learns the interfaces before the first packet.
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	return &pcapngWriter{w: ng}, nil
}

func (w *pcapngWriter) WritePacket(p Packet) error {
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: max(p.Length, len(p.Data)), InterfaceIndex: p.Iface}
	return w.w.WritePacket(ci, p.Data)
}

func (w *pcapngWriter) Flush() error { return w.w.Flush() }

// pcapWriter writes classic pcap with nanosecond timestamps.
type pcapWriter struct {
	w     *pcapgo.Writer
	flush func() error
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
	// pcapgo.Writer writes straight through; buffer it like the pcapng one.
	bw := bufio.NewWriter(w)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(uint32(snapLen), ifaces[0].LinkType); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	return &pcapWriter{w: pw, flush: bw.Flush}, nil
}

func (w *pcapWriter) WritePacket(p Packet) error {
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: max(p.Length, len(p.Data))}
	return w.w.WritePacket(ci, p.Data)
}

func (w *pcapWriter) Flush() error { return w.flush() }
