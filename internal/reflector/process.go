package reflector

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/atomicfile"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/tundev"
	"github.com/netlab-dev/netlab/topology"
)

// StatsFile is what a running reflector writes to --stats-file, as JSON,
// every StatsInterval and when it exits, so that the supervising netlab can
// show packets/bytes/drops. Counters are cumulative since the process
// started. In UDP-bridge mode they count both directions.
type StatsFile struct {
	Pid     int       `json:"pid"`
	Queues  int       `json:"queues"`
	Packets uint64    `json:"packets"`
	Bytes   uint64    `json:"bytes"`
	Drops   uint64    `json:"drops"`
	Updated time.Time `json:"updated"`
}

// StatsInterval is how often Main rewrites the stats file.
const StatsInterval = time.Second

// ReadStats reads a stats file written by Main. The file is replaced by
// rename, so a reader never sees a partial one.
func ReadStats(path string) (StatsFile, error) {
	var s StatsFile
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read reflector stats: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read reflector stats %s: %w", path, err)
	}
	return s, nil
}

// writeStats replaces path atomically.
func writeStats(path string, s StatsFile) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// config is Main's parsed command line.
type config struct {
	ns, dev     string
	queues      int
	vnetHdr     bool
	log         bool
	statsFile   string
	udpListen   netip.AddrPort
	udpSend     netip.AddrPort
	udpNS       string
	udpBridging bool
	cpus        []int // --cpus: run every thread on these CPUs; nil: anywhere
}

const usage = `usage: netlab reflect --dev IFNAME [--ns NAME] [--queues N] [--vnet-hdr]
                     [--log] [--stats-file PATH] [--cpus LIST]
                     [--udp-listen ADDR:PORT --udp-send ADDR:PORT [--udp-ns NAME]]

Attaches to the existing TUN device IFNAME in namespace NAME, drops every
capability, and then either reflects every packet back with source and
destination swapped, or (with --udp-listen/--udp-send) bridges the TUN to UDP:
each packet read from the TUN is sent as one datagram to --udp-send, and each
datagram received on --udp-listen is written to the TUN.
`

func parseArgs(args []string, stderr io.Writer) (config, error) {
	var c config
	var listen, send, cpus string
	fs := flag.NewFlagSet("reflect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.ns, "ns", namespace.Host, "network namespace of the TUN device")
	fs.StringVar(&c.dev, "dev", "", "name of the existing TUN device (required)")
	fs.IntVar(&c.queues, "queues", 1, "number of queues to attach, one goroutine each (the device must be multi-queue for more than 1)")
	fs.BoolVar(&c.vnetHdr, "vnet-hdr", false, "attach with IFF_VNET_HDR and TSO/USO offloads (64 KiB GSO packets)")
	fs.BoolVar(&c.log, "log", false, `print one line per packet to stdout: "LEN: SRC->DST" as read`)
	fs.StringVar(&c.statsFile, "stats-file", "", "write JSON counters here every second and on exit")
	fs.StringVar(&cpus, "cpus", "", `run on these CPUs only, a list such as "1" or "0-1,4" (all threads; sched_setaffinity)`)
	fs.StringVar(&listen, "udp-listen", "", "UDP bridge: receive datagrams on ADDR:PORT and write them to the TUN")
	fs.StringVar(&send, "udp-send", "", "UDP bridge: send each packet read from the TUN to ADDR:PORT")
	fs.StringVar(&c.udpNS, "udp-ns", namespace.Host, "UDP bridge: namespace of the UDP socket")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.dev == "" {
		return c, errors.New("--dev is required")
	}
	if err := tundev.CheckName(c.dev); err != nil {
		return c, fmt.Errorf("--dev: %w", err)
	}
	if c.queues < 1 || c.queues > 256 {
		return c, fmt.Errorf("--queues %d: want 1 to 256", c.queues)
	}
	if cpus != "" {
		var err error
		if c.cpus, err = topology.ParseCPUList(cpus); err != nil {
			return c, fmt.Errorf("--cpus: %w", err)
		}
	}
	if (listen == "") != (send == "") {
		return c, errors.New("--udp-listen and --udp-send go together")
	}
	udpNSSet := false
	fs.Visit(func(f *flag.Flag) { udpNSSet = udpNSSet || f.Name == "udp-ns" })
	if listen == "" {
		if udpNSSet {
			return c, errors.New("--udp-ns needs --udp-listen and --udp-send")
		}
		return c, nil
	}
	c.udpBridging = true
	if c.vnetHdr {
		return c, errors.New("--vnet-hdr cannot be used with the UDP bridge (datagrams carry plain IP packets)")
	}
	var err error
	if c.udpListen, err = netip.ParseAddrPort(listen); err != nil {
		return c, fmt.Errorf("--udp-listen: %w", err)
	}
	if c.udpSend, err = netip.ParseAddrPort(send); err != nil {
		return c, fmt.Errorf("--udp-send: %w", err)
	}
	return c, nil
}

// Main is the body of `netlab reflect`: see usage. It returns the exit code:
// 0 after SIGTERM/SIGINT or when the TUN device is deleted under it (a clean
// stop, final stats written), 1 on a runtime error, 2 on a usage error.
//
// Order matters: the UDP socket is opened (in --udp-ns) and the TUN queues
// attached (in --ns) while the process still has CAP_SYS_ADMIN (setns) and
// CAP_NET_ADMIN (TUNSETIFF); then every capability is dropped on all threads;
// only then does traffic flow, one goroutine per queue.
func Main(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "netlab reflect: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "netlab reflect: %v\n", err)
		return 1
	}
	return 0
}

// run attaches, drops privileges and moves packets until ctx is done or a
// loop fails.
func run(ctx context.Context, c config, stdout, stderr io.Writer) error {
	if c.cpus != nil {
		if err := SetAffinity(c.cpus); err != nil {
			return err
		}
	}
	var conn *net.UDPConn
	if c.udpBridging {
		var err error
		if conn, err = listenUDP(c.udpNS, c.udpListen); err != nil {
			return err
		}
		defer conn.Close()
	}
	queues, err := OpenQueues(c.ns, c.dev, c.queues, c.vnetHdr)
	if err != nil {
		return err
	}
	defer func() {
		for _, q := range queues {
			q.Close()
		}
	}()
	if err := DropAllCapabilities(); err != nil {
		return err
	}

	var logf func(string)
	if c.log {
		var mu sync.Mutex
		logf = func(line string) {
			mu.Lock()
			io.WriteString(stdout, line+"\n")
			mu.Unlock()
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stats := make([]Stats, len(queues)+1) // +1: UDP→TUN
	var wg sync.WaitGroup
	errc := make(chan error, len(stats))
	for i, q := range queues {
		wg.Go(func() {
			var err error
			if c.udpBridging {
				err = tunToUDP(ctx, q, conn, c.udpSend, &stats[i], logf)
			} else {
				err = Run(ctx, q, &stats[i], logf) // q skips its virtio_net_hdr itself
			}
			if err != nil {
				errc <- fmt.Errorf("queue %d: %w", i, err)
			}
			cancel() // a queue that ends (device deleted) stops them all
		})
	}
	if c.udpBridging {
		wg.Go(func() {
			if err := udpToTUN(ctx, conn, queues[0], &stats[len(queues)], logf); err != nil {
				errc <- err
			}
			cancel()
		})
	}

	snapshot := func() StatsFile {
		var sum Stats
		for i := range stats {
			sum.Add(&stats[i])
		}
		return StatsFile{
			Pid: os.Getpid(), Queues: len(queues),
			Packets: sum.Packets.Load(), Bytes: sum.Bytes.Load(), Drops: sum.Drops.Load(),
			Updated: time.Now().UTC(),
		}
	}
	var statsErr error
	if c.statsFile != "" {
		if statsErr = writeStats(c.statsFile, snapshot()); statsErr != nil {
			cancel()
		}
		wg.Go(func() {
			t := time.NewTicker(StatsInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := writeStats(c.statsFile, snapshot()); err != nil {
						fmt.Fprintf(stderr, "netlab reflect: stats: %v\n", err)
					}
				}
			}
		})
	}

	<-ctx.Done()
	// Wake every loop: Run closes its own device on cancel; the bridge
	// loops need the socket closed.
	cancel()
	if conn != nil {
		conn.Close()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	final := snapshot()
	if c.statsFile != "" {
		if err := writeStats(c.statsFile, final); err != nil {
			errs = append(errs, fmt.Errorf("stats: %w", err))
		}
	}
	if statsErr != nil {
		errs = append(errs, fmt.Errorf("stats: %w", statsErr))
	}
	fmt.Fprintf(stderr, "netlab reflect: %s: stopped after %d packets, %d bytes, %d drops\n",
		c.dev, final.Packets, final.Bytes, final.Drops)
	return errors.Join(errs...)
}

// listenUDP opens the bridge's UDP socket in namespace nsName: a socket
// belongs to the namespace of the thread that creates it.
func listenUDP(nsName string, addr netip.AddrPort) (*net.UDPConn, error) {
	var conn *net.UDPConn
	listen := func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}
	var err error
	if nsName == namespace.Host {
		err = listen()
	} else {
		ns, oerr := namespace.Open(nsName)
		if oerr != nil {
			return nil, oerr
		}
		defer ns.Close()
		err = namespace.Do(ns, listen)
	}
	if err != nil {
		return nil, fmt.Errorf("ns %s: udp listen %s: %w", nsName, addr, err)
	}
	return conn, nil
}

// tunToUDP sends every packet read from dev as one datagram to dst. Like
// Run it closes dev when ctx is done and returns nil then.
func tunToUDP(ctx context.Context, dev Device, conn *net.UDPConn, dst netip.AddrPort, st *Stats, log func(string)) error {
	err := readPackets(ctx, dev, func(_ Device, pkt []byte) error {
		if log != nil {
			log("tun->udp " + describe(pkt))
		}
		if _, err := conn.WriteToUDPAddrPort(pkt, dst); err != nil {
			if ctx.Err() != nil {
				return errStop
			}
			st.Drops.Add(1)
			return nil
		}
		st.Packets.Add(1)
		st.Bytes.Add(uint64(len(pkt)))
		return nil
	})
	if err != nil {
		return fmt.Errorf("tun %w", err)
	}
	return nil
}

// udpToTUN writes every datagram received on conn to dev if it holds an IP
// packet; others are dropped. It returns nil once ctx is done (the caller
// closes conn to wake it).
func udpToTUN(ctx context.Context, conn *net.UDPConn, dev Device, st *Stats, log func(string)) error {
	buf := make([]byte, maxPacket)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("udp read: %w", err)
		}
		pkt := buf[:n]
		if log != nil {
			log("udp->tun " + describe(pkt))
		}
		if version(pkt) == 0 {
			st.Drops.Add(1)
			continue
		}
		if _, err := dev.Write(pkt); err != nil {
			if ctx.Err() != nil || isClosed(err) {
				return nil
			}
			st.Drops.Add(1)
			continue
		}
		st.Packets.Add(1)
		st.Bytes.Add(uint64(n))
	}
}
