package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/google/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Compile turns a filter in tcpdump's expression syntax (pcap-filter(7):
// "icmp", "tcp port 80 and host 10.0.0.2") into classic BPF for packets of
// the link type.
//
// Why tcpdump: the expression language is what users know, and its only
// full compiler is libpcap's; netlab builds without cgo. tcpdump (installed
// with netlab's dependencies) compiles it with -ddd, reading the link type
// from a pcap file header on its standard input, so it never opens an
// interface, needs no privilege and does not depend on the namespace.
//
// Equivalent to: `tcpdump -r FILE-OF-LINKTYPE -ddd FILTER`.
func Compile(filter string, lt layers.LinkType, snapLen int) ([]bpf.RawInstruction, error) {
	if snapLen <= 0 {
		snapLen = DefaultSnapLen
	}
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, fmt.Errorf("filter %q: tcpdump compiles filters and is not installed (apt-get install tcpdump, or `make deps`): %w", filter, err)
	}
	// A pcap file header with no packets: magic, version 2.4, zone,
	// sigfigs, snap length, link type.
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:4], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:6], 2)
	binary.LittleEndian.PutUint16(hdr[6:8], 4)
	binary.LittleEndian.PutUint32(hdr[16:20], uint32(snapLen))
	binary.LittleEndian.PutUint32(hdr[20:24], uint32(lt))
	cmd := exec.Command(tcpdump, "-r", "-", "-ddd", "--", filter)
	cmd.Stdin = bytes.NewReader(hdr[:])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("filter %q: %s", filter, tcpdumpError(stderr.String(), err))
	}
	prog, err := parseDDD(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", filter, err)
	}
	return prog, nil
}

// tcpdumpError is the line of tcpdump's error output that says what is
// wrong, without the "reading from file" chatter.
func tcpdumpError(stderr string, err error) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "reading from file") {
			lines = append(lines, strings.TrimPrefix(l, "tcpdump: "))
		}
	}
	if len(lines) == 0 {
		return err.Error()
	}
	return strings.Join(lines, "; ")
}

// parseDDD reads tcpdump -ddd output: the instruction count, then one
// "code jt jf k" line per instruction, all decimal.
func parseDDD(out string) ([]bpf.RawInstruction, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, fmt.Errorf("tcpdump -ddd printed nothing")
	}
	count, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || count <= 0 || count != len(lines)-1 {
		return nil, fmt.Errorf("tcpdump -ddd: unexpected output %q", out)
	}
	prog := make([]bpf.RawInstruction, 0, count)
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("tcpdump -ddd: bad instruction %q", l)
		}
		var v [4]uint64
		for i, s := range f {
			bits := []int{16, 8, 8, 32}[i]
			if v[i], err = strconv.ParseUint(s, 10, bits); err != nil {
				return nil, fmt.Errorf("tcpdump -ddd: bad instruction %q: %w", l, err)
			}
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	return prog, nil
}

// attach sets the socket's filter.
//
// Equivalent to: setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog).
func attach(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return nil
	}
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fp := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
		return fmt.Errorf("attach filter: %w", err)
	}
	return nil
}
