package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/capture"
	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/topology"
)

// maxSnapLen is the largest --snaplen: tcpdump's (and pcap's) largest.
const maxSnapLen = capture.DefaultSnapLen

// capture: netlab capture LAB NS/IFACE [NS/IFACE...] [-w FILE] [--count N]
// [--duration D] [FILTER]: the packets of lab interfaces, as pcapng (or
// pcap) or one line each, until the count, the duration, or Ctrl-C/SIGTERM.
// The work is internal/capture's; this file resolves names and wires
// output.
func (a *app) capture(args []string) int {
	fs := a.flags("capture", "LAB NS/IFACE [NS/IFACE...] [-w FILE|-] [--count N] [--duration D] [FILTER]")
	write := fs.String("w", "", "write the packets to FILE (pcapng; .pcap: pcap) instead of printing them; - is standard output (| wireshark -k -i -)")
	format := fs.String("format", "", "file format, pcapng or pcap (default: by the file name, pcapng for -)")
	count := fs.Int("count", 0, "stop after N packets (0: no limit)")
	duration := fs.Duration("duration", 0, "stop after this long, e.g. 10s (0: no limit)")
	snapLen := fs.Int("snaplen", capture.DefaultSnapLen, "bytes kept of each packet")
	quiet := fs.Bool("q", false, "no messages on standard error, only the packets")
	fs.Usage = func() {
		fmt.Fprint(a.stderr, `Usage: netlab capture LAB NS/IFACE [NS/IFACE...] [-w FILE|-] [--count N] [--duration D] [FILTER]

Records the packets of lab interfaces until --count, --duration, Ctrl-C or
SIGTERM (the file is complete and valid then). NS is a namespace of the lab
(its name in the file or on the machine) or "host" for the lab's host side:
host-side veth ends, bridges' own ports. FILTER is tcpdump's expression
syntax (pcap-filter(7)), compiled by tcpdump. Several interfaces go into one
pcapng file, each packet naming its interface.

  netlab capture blue-red blue/veth1 icmp
  netlab capture blue-red blue/veth1 host/veth0 -w ping.pcapng --count 8
  netlab capture blue-red host/ovsbr0 -w - | wireshark -k -i -

Flags:
`)
		fs.PrintDefaults()
	}
	// A "--" ends the flags and the interfaces: what follows is the filter,
	// which may have words that look like flags.
	dash := slices.Index(args, "--")
	if dash < 0 {
		dash = len(args)
	}
	pos, code, ok := positional(fs, args[:dash], 2, -1)
	if !ok {
		return code
	}
	if !strings.Contains(pos[1], "/") {
		fs.Usage()
		return exitUsage
	}
	pos = append(pos, args[dash:]...)
	if *count < 0 || *duration < 0 {
		fmt.Fprintln(a.stderr, "netlab: capture: --count and --duration must not be negative")
		return exitUsage
	}
	if *snapLen <= 0 || *snapLen > maxSnapLen {
		// Each interface's buffer is --snaplen bytes: a huge one would
		// end the process for want of memory.
		fmt.Fprintf(a.stderr, "netlab: capture: --snaplen %d: want 1 to %d\n", *snapLen, maxSnapLen)
		return exitUsage
	}
	specs, filter := splitCaptureArgs(pos[1:])
	var f capture.Format
	switch {
	case *format != "":
		f = capture.Format(*format)
		if f != capture.Pcap && f != capture.Pcapng {
			fmt.Fprintf(a.stderr, "netlab: capture: --format %s: pcapng or pcap\n", *format)
			return exitUsage
		}
	case *write != "":
		f = capture.FormatOf(*write)
	}
	if a.sandbox != "" {
		return a.enter("capture", args)
	}
	if filter != "" {
		// A filter tcpdump cannot compile is a usage error; checked for
		// Ethernet here, and compiled again per interface's link type.
		if _, err := capture.Compile(filter, capture.LinkTypeEthernet, *snapLen); err != nil {
			fmt.Fprintf(a.stderr, "netlab: capture: %v\n", err)
			return exitUsage
		}
	}
	name, code := a.labName(pos[0], "")
	if name == "" {
		return code
	}
	st, err := a.engine(nil).Status(name)
	if err != nil {
		return a.fail("capture "+name, err)
	}
	if len(st.Namespaces) == 0 && len(st.Bridges) == 0 {
		fmt.Fprintf(a.stderr, "netlab: capture: lab %s is not running (netlab status lists the labs)\n", name)
		return exitRuntime
	}
	msg := io.Writer(a.stderr)
	if *quiet {
		msg = io.Discard
	}
	// The file says which veth ends are peers, for interfaces that must be
	// read on their peer (capture.ForLab); without it they are read as they
	// are.
	file, _ := a.engine(nil).LabFile(name)
	var ifaces []capture.Interface
	for _, s := range specs {
		i, err := resolveIface(st, s)
		if err != nil {
			fmt.Fprintf(a.stderr, "netlab: capture: %v\n", err)
			return exitUsage
		}
		i, note, err := capture.ForLab(file, i)
		if err != nil {
			return a.fail("capture "+name, err)
		}
		if note != "" {
			fmt.Fprintf(msg, "netlab: %s\n", note)
		}
		ifaces = append(ifaces, i)
	}
	if sandbox.Inside() != "" {
		// Started by `netlab --sandbox ... capture` through nsenter: end
		// cleanly when the nsenter that started us dies (it gets SIGTERM
		// when the netlab outside does; see runIn), instead of capturing on
		// alone.
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	}
	hs, err := capture.OpenAll(ifaces, filter, *snapLen)
	if err != nil {
		return a.fail("capture "+name, err)
	}
	ifaces = capture.Interfaces(hs)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	var labels []string
	for _, i := range ifaces {
		labels = append(labels, i.Label)
	}
	fmt.Fprintf(msg, "netlab: capturing on %s", strings.Join(labels, ", "))
	if filter != "" {
		fmt.Fprintf(msg, " (filter: %s)", filter)
	}
	fmt.Fprintln(msg, "; Ctrl-C stops")

	var n int
	if *write == "" {
		out := bufio.NewWriter(a.stdout)
		err = capture.Run(ctx, hs, *count, func(p capture.Packet) error {
			n++
			fmt.Fprintln(out, capture.Line(p, ifaces[p.Iface]))
			// A line at a time: someone is reading.
			return out.Flush()
		})
	} else {
		n, err = a.captureTo(ctx, hs, ifaces, *write, f, filter, *snapLen, *count)
	}
	if err != nil {
		return a.fail("capture "+name, err)
	}
	dropped := 0
	for _, h := range hs {
		dropped += h.Dropped()
	}
	fmt.Fprintf(msg, "netlab: %d packets captured", n)
	if dropped > 0 {
		fmt.Fprintf(msg, ", %d dropped by the kernel (the socket's buffer was full: write to a file, or filter)", dropped)
	}
	fmt.Fprintln(msg)
	return exitOK
}

// captureTo runs the capture into a file ("-": standard output) and
// returns how many packets it wrote. Buffered writes are flushed every
// 100 ms, so a live reader (wireshark -k -i -) sees packets as they come,
// and at the end, so the file is complete.
func (a *app) captureTo(ctx context.Context, hs []*capture.Handle, ifaces []capture.Interface, path string, f capture.Format, filter string, snapLen, count int) (int, error) {
	var out io.Writer = a.stdout
	if path != "-" {
		file, err := createCaptureFile(path)
		if err != nil {
			capture.CloseAll(hs)
			return 0, err
		}
		defer file.Close()
		out = file
	}
	w, err := capture.NewWriter(out, f, ifaces, filter, snapLen)
	if err != nil {
		capture.CloseAll(hs)
		return 0, err
	}
	var mu sync.Mutex
	var werr error
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				if werr == nil {
					werr = w.Flush()
				}
				mu.Unlock()
			}
		}
	}()
	n := 0
	err = capture.Run(ctx, hs, count, func(p capture.Packet) error {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return werr
		}
		n++
		return w.WritePacket(p)
	})
	close(done)
	mu.Lock()
	defer mu.Unlock()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = werr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	return n, nil
}

// createCaptureFile creates (or truncates) the file a capture writes to,
// with mode 0600 when it makes it (a umask can only take bits away, never
// let others read it): packets carry what
// the lab's traffic carries (passwords, keys, cookies), so the file is its
// owner's alone, as dumpcap makes its files. A file already there keeps
// its mode, as with dumpcap and tcpdump.
func createCaptureFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
}

// splitCaptureArgs splits what follows LAB into the interfaces (the
// leading words with a "/") and the filter (the rest, joined as tcpdump
// joins its expression; after a "--" all of it).
func splitCaptureArgs(args []string) (specs []string, filter string) {
	i := 0
	for i < len(args) && args[i] != "--" && strings.Contains(args[i], "/") {
		i++
	}
	specs, rest := args[:i], args[i:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	return specs, strings.Join(rest, " ")
}

// resolveIface finds NS/IFACE among the lab's interfaces as status sees
// them: NS is "host" or a namespace's name in the file or on the machine
// (with the lab's prefix), IFACE likewise.
func resolveIface(st *engine.LabStatus, spec string) (capture.Interface, error) {
	ns, ifname, ok := strings.Cut(spec, "/")
	if !ok || ns == "" || ifname == "" {
		return capture.Interface{}, fmt.Errorf("%q: want NS/IFACE", spec)
	}
	for _, n := range st.Namespaces {
		if n.Name != ns && n.Name != st.Prefix+ns {
			continue
		}
		var names []string
		for _, l := range n.Links {
			if l.Name == ifname || l.Name == st.Prefix+ifname {
				label := strings.TrimPrefix(n.Name, st.Prefix) + "/" + l.Name
				if n.Name == topology.Host {
					label = topology.Host + "/" + l.Name
				}
				return capture.Interface{NS: n.Name, Name: l.Name, Label: label}, nil
			}
			names = append(names, l.Name)
		}
		return capture.Interface{}, fmt.Errorf("lab %s has no interface %s in %s (it has: %s)", st.Lab, ifname, ns, strings.Join(names, ", "))
	}
	var names []string
	for _, n := range st.Namespaces {
		names = append(names, n.Name)
	}
	return capture.Interface{}, fmt.Errorf("lab %s has no namespace %s (it has: %s)", st.Lab, ns, strings.Join(names, ", "))
}
