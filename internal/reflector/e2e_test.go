package reflector

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/tundev"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, TUN devices") }

// ourLinks are the link names the tests create, always inside their own
// namespaces.
var ourLinks = []string{"refl0", "single0", "nosuch0"}

// newTestNS creates a namespace "nlr"+4 hex digits with lo up, deleted when
// the test ends (which also destroys the TUN devices in it). At the end it
// checks that the namespace is gone from `ip netns list` and that none of
// our link names appears in the host's `ip -br link`. (Other packages' tests
// may add and remove their own namespaces meanwhile, so a before/after
// comparison of the whole lists would be flaky.)
func newTestNS(t *testing.T) string {
	t.Helper()
	name := testkit.Name(t, "nlr", 4)
	if err := namespace.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := namespace.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		list, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(list), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				t.Errorf("namespace %s still listed", name)
			}
		}
		links, _ := exec.Command("ip", "-br", "link").Output()
		for _, l := range strings.Split(string(links), "\n") {
			if f := strings.Fields(l); len(f) > 0 && slices.Contains(ourLinks, strings.SplitN(f[0], "@", 2)[0]) {
				t.Errorf("host has link %s", f[0])
			}
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// ip runs the ip command and fails the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNS runs a command inside namespace ns.
func inNS(ns string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
}

// setupTUN creates refl0 in ns with 10.0.0.1/8, fe80::1/64 and a route to
// fd2a:cd2c:8bc4::/64.
func setupTUN(t *testing.T, ns string, mtu int, multiQueue bool) {
	t.Helper()
	createTUN(t, ns, "refl0", mtu, multiQueue, false)
	ip(t, "-n", ns, "addr", "add", "10.0.0.1/8", "dev", "refl0")
	ip(t, "-n", ns, "-6", "addr", "add", "fe80::1/64", "dev", "refl0", "nodad")
	ip(t, "-n", ns, "-6", "route", "add", "fd2a:cd2c:8bc4::/64", "dev", "refl0")
}

// reflectorProc is a reflector started by re-executing the test binary.
type reflectorProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	statsFile      string
	exited         chan struct{} // closed once cmd.Wait returned
}

// startReflector starts Main(args) in a child process and waits until it
// has written its first stats (it has attached and dropped capabilities
// then). It is killed by PID when the test ends, if still running.
func startReflector(t *testing.T, args ...string) *reflectorProc {
	t.Helper()
	p := &reflectorProc{statsFile: filepath.Join(t.TempDir(), "stats.json")}
	p.cmd = exec.Command(os.Args[0], append(args, "--stats-file", p.statsFile)...)
	p.cmd.Env = append(os.Environ(), reexecEnv+"=main")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL) // by PID; no-op if already reaped
		<-exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := ReadStats(p.statsFile); err == nil {
			break
		}
		select {
		case <-exited:
			t.Fatalf("reflector exited: %v\n%s", p.cmd.ProcessState, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("reflector wrote no stats in 10s\n%s", p.stderr.String())
		}
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *reflectorProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("reflector did not exit on SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("reflector exit code %d\n%s", code, p.stderr.String())
	}
}

// ping runs ping (or ping -6) inside ns and fails the test if no reply
// comes back.
func ping(t *testing.T, ns, addr string) {
	t.Helper()
	out, err := inNS(ns, "ping", "-c", "2", "-i", "0.2", "-W", "3", addr).CombinedOutput()
	if err != nil {
		t.Errorf("ping %s in %s: %v\n%s", addr, ns, err, out)
	}
}

// checkCapEff checks that every thread of pid has no effective capability.
func checkCapEff(t *testing.T, pid int) {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/status")
	if len(tasks) == 0 {
		t.Fatalf("no threads for pid %d", pid)
	}
	for _, path := range tasks {
		st, err := ReadProcStatus(path)
		if err != nil {
			t.Fatal(err)
		}
		if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" {
			t.Errorf("%s: CapEff %s CapPrm %s, want 0", path, st["CapEff"], st["CapPrm"])
		}
	}
}

// inNamespace runs fn on a thread in ns (sockets it creates live there).
func inNamespace(t *testing.T, ns string, fn func() error) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := namespace.Do(h, fn); err != nil {
		t.Fatal(err)
	}
}

func TestReflectorEndToEnd(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	setupTUN(t, ns, 1500, true)
	p := startReflector(t, "--ns", ns, "--dev", "refl0", "--queues", "2", "--log")
	checkCapEff(t, p.cmd.Process.Pid)

	ping(t, ns, "10.0.0.41")
	ping(t, ns, "10.200.3.4")
	ping(t, ns, "fd2a:cd2c:8bc4::23")

	// UDP: a datagram to a reflected address reaches our own listener.
	var udpL *net.UDPConn
	var udpC net.Conn
	inNamespace(t, ns, func() (err error) {
		if udpL, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero}); err != nil {
			return err
		}
		port := udpL.LocalAddr().(*net.UDPAddr).Port
		udpC, err = net.Dial("udp4", "10.9.9.9:"+strconv.Itoa(port))
		return err
	})
	defer udpL.Close()
	defer udpC.Close()
	if _, err := udpC.Write([]byte("over the mirror")); err != nil {
		t.Fatal(err)
	}
	udpL.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, from, err := udpL.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("udp: %v", err)
	}
	if string(buf[:n]) != "over the mirror" || from.Addr() != netip.MustParseAddr("10.9.9.9") {
		t.Errorf("udp: got %q from %v", buf[:n], from)
	}

	// TCP: a connection to a reflected address is accepted by our own
	// listener and carries data both ways.
	var tcpL net.Listener
	var tcpC net.Conn
	inNamespace(t, ns, func() (err error) {
		if tcpL, err = net.Listen("tcp4", "0.0.0.0:0"); err != nil {
			return err
		}
		port := tcpL.Addr().(*net.TCPAddr).Port
		tcpC, err = net.DialTimeout("tcp4", "10.77.1.2:"+strconv.Itoa(port), 5*time.Second)
		return err
	})
	defer tcpL.Close()
	defer tcpC.Close()
	srv, err := tcpL.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() { tcpC.Write(big) }()
	got := make([]byte, len(big))
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := readFull(srv, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("tcp client->server: %v", err)
	}
	if _, err := srv.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	tcpC.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := readFull(tcpC, buf[:4]); err != nil || string(buf[:4]) != "pong" {
		t.Fatalf("tcp server->client: %q %v", buf[:4], err)
	}

	time.Sleep(StatsInterval + 200*time.Millisecond)
	mid, err := ReadStats(p.statsFile)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Pid != p.cmd.Process.Pid || mid.Queues != 2 || mid.Packets < 10 || mid.Bytes < uint64(len(big)) {
		t.Errorf("stats while running: %+v", mid)
	}
	p.stop(t)
	final, err := ReadStats(p.statsFile)
	if err != nil {
		t.Fatal(err)
	}
	if final.Packets < mid.Packets || final.Updated.Before(mid.Updated) {
		t.Errorf("final stats %+v older than %+v", final, mid)
	}
	// The source is whichever link-local the kernel picks (refl0 has its own besides fe80::1).
	if !strings.Contains(p.stdout.String(), "->fd2a:cd2c:8bc4::23") ||
		!strings.Contains(p.stdout.String(), ": 10.0.0.1->10.0.0.41") {
		t.Errorf("log lacks the pings:\n%.2000s", p.stdout.String())
	}
	t.Logf("final stats: %+v; stderr: %s", final, p.stderr.String())
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestReflectorUDPBridge(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	setupTUN(t, ns, 1500, false)

	// The test's side of the bridge, in the host namespace on loopback.
	mine, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	theirs := freeUDPPort(t)
	startReflector(t, "--ns", ns, "--dev", "refl0",
		"--udp-listen", theirs.String(), "--udp-send", mine.LocalAddr().String())

	// Reflect, through the test, every packet the bridge hands us.
	var first []byte
	firstc := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := mine.Read(buf)
			if err != nil {
				return
			}
			select {
			case firstc <- bytes.Clone(buf[:n]):
			default:
			}
			if Reflect(buf[:n]) {
				mine.WriteToUDPAddrPort(buf[:n], theirs)
			}
		}
	}()
	ping(t, ns, "10.0.0.41")
	select {
	case first = <-firstc:
	case <-time.After(time.Second):
		t.Fatal("no datagram from the bridge")
	}
	// The datagram is the bare IP packet: IPv4, ICMP echo request
	// 10.0.0.1 -> 10.0.0.41, length field = datagram length.
	if len(first) < 28 || first[0] != 0x45 || first[9] != 1 || first[20] != 8 ||
		!bytes.Equal(first[12:16], []byte{10, 0, 0, 1}) || !bytes.Equal(first[16:20], []byte{10, 0, 0, 41}) ||
		int(first[2])<<8|int(first[3]) != len(first) {
		t.Errorf("first datagram is not the echo request packet: %x", first)
	}
}

// freeUDPPort returns a 127.0.0.1 address whose UDP port was free a moment
// ago.
func freeUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// createTUN makes a persistent TUN the way netlab up does (kernel.AddTuntap),
// with an MTU, and brings it up.
func createTUN(t *testing.T, ns, name string, mtu int, multiQueue, vnetHdr bool) {
	t.Helper()
	h, err := kernel.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.AddTuntap(name, "netlab:test:"+ns+"/"+name, state.Tuntap{MultiQueue: multiQueue, VnetHdr: vnetHdr, Owner: -1, Group: -1}); err != nil {
		t.Fatal(err)
	}
	if mtu > 0 {
		if err := h.SetMTU(name, mtu); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.SetUp(name, true); err != nil {
		t.Fatal(err)
	}
}

func TestOpenQueues(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	createTUN(t, ns, "refl0", 9000, true, true)
	out, _ := exec.Command("ip", "-n", ns, "-d", "link", "show", "refl0").CombinedOutput()
	if !strings.Contains(string(out), "mtu 9000") || !strings.Contains(string(out), "tun") || !strings.Contains(string(out), "multi_queue") {
		t.Errorf("refl0 is not an MTU 9000 multi-queue tun:\n%s", out)
	}

	files, err := OpenQueues(ns, "refl0", 3, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	// Attaching never creates: a missing name stays missing, here and in
	// the host.
	if _, err := OpenQueues(ns, "nosuch0", 1, false); err == nil {
		t.Errorf("OpenQueues on a missing device succeeded")
	} else if !errors.Is(err, tundev.ErrNoDevice) {
		t.Errorf("OpenQueues on a missing device: %v, want tundev.ErrNoDevice", err)
	}
	if exec.Command("ip", "-n", ns, "link", "show", "nosuch0").Run() == nil ||
		exec.Command("ip", "link", "show", "nosuch0").Run() == nil {
		t.Errorf("OpenQueues created nosuch0")
	}
	// A single-queue device takes one queue, not two.
	createTUN(t, ns, "single0", 0, false, false)
	if files, err := OpenQueues(ns, "single0", 1, false); err != nil {
		t.Errorf("one queue on single-queue tun: %v", err)
	} else {
		files[0].Close()
	}
	if _, err := OpenQueues(ns, "single0", 2, false); err == nil {
		t.Errorf("two queues on a single-queue tun succeeded")
	} else if !errors.Is(err, tundev.ErrNotMultiQueue) {
		t.Errorf("two queues on a single-queue tun: %v, want tundev.ErrNotMultiQueue", err)
	}
	if _, err := OpenQueues("nlr-no-such-ns", "refl0", 1, false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenQueues in a missing namespace: %v", err)
	}
}

func TestMainUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--dev", ""},
		{"--dev", "refl0", "--queues", "0"},
		{"--dev", "refl0", "--udp-listen", "127.0.0.1:1"},
		{"--dev", "refl0", "--udp-listen", "127.0.0.1:1", "--udp-send", "127.0.0.1:2", "--vnet-hdr"},
		{"--dev", "refl0", "--udp-ns", "x"},
		{"--dev", "refl0", "extra"},
		{"--dev", "a-name-longer-than-15"},
		{"--dev", "refl0", "--cpus", "1-"},
		{"--dev", "refl0", "--cpus", "1024"},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 {
			t.Errorf("Main(%q) = %d, want 2\n%s", args, code, errb.String())
		}
	}
}

func TestStatsFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.json")
	want := StatsFile{Pid: 7, Queues: 2, Packets: 3, Bytes: 4, Drops: 5, Updated: time.Now().UTC().Round(0)}
	if err := writeStats(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadStats(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Updated.Equal(want.Updated) {
		t.Errorf("Updated %v, want %v", got.Updated, want.Updated)
	}
	got.Updated = want.Updated
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if _, err := ReadStats(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStats of a missing file: %v", err)
	}

}

func TestReflectorStopsWhenDeviceDeleted(t *testing.T) {
	requireRoot(t)
	ns := newTestNS(t)
	setupTUN(t, ns, 1500, true)
	p := startReflector(t, "--ns", ns, "--dev", "refl0", "--queues", "2")
	ip(t, "-n", ns, "link", "del", "refl0")
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("reflector still running after its device was deleted")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.stderr.String())
	}
	if _, err := ReadStats(p.statsFile); err != nil {
		t.Errorf("no final stats: %v", err)
	}
}
