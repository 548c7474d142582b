package capture

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestMain runs the tests in a sandbox of their own: the namespaces they
// make are the sandbox's, never the machine's.
func TestMain(m *testing.M) { os.Exit(sandbox.RunTests(m.Run, false)) }

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// pairNS makes namespaces A and B joined by a veth (a: 10.9.0.1, b:
// 10.9.0.2), removed at cleanup.
func pairNS(t *testing.T) (a, b string) {
	t.Helper()
	testkit.RequireRoot(t, "namespaces, packet sockets")
	name := testkit.Name(t, "cap", 6)
	a, b = name+"a", name+"b"
	for _, ns := range []string{a, b} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	ipCmd(t, "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
	ipCmd(t, "-n", a, "addr", "add", "10.9.0.1/24", "dev", "va")
	ipCmd(t, "-n", b, "addr", "add", "10.9.0.2/24", "dev", "vb")
	ipCmd(t, "-n", a, "link", "set", "va", "up")
	ipCmd(t, "-n", b, "link", "set", "vb", "up")
	return a, b
}

// collect runs a capture in the background and returns a function that
// waits for its end and gives its packets.
func collect(t *testing.T, ctx context.Context, hs []*Handle, count int) func() []Packet {
	t.Helper()
	var mu sync.Mutex
	var got []Packet
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, hs, count, func(p Packet) error {
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
			return nil
		})
	}()
	return func() []Packet {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("capture: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("capture did not end")
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// A ping captured on both veth ends with a filter: each end sees its
// request and reply in the right direction; the TCP connection attempt
// the filter excludes is not there; --count ends the capture.
func TestCaptureVeth(t *testing.T) {
	a, b := pairNS(t)
	hs, err := OpenAll([]Interface{{NS: a, Name: "va", Label: "a/va"}, {NS: b, Name: "vb", Label: "b/vb"}}, "icmp or tcp port 9", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.LinkType != layers.LinkTypeEthernet || h.Index == 0 {
			t.Errorf("%s: link type %s, index %d", h.Label, h.LinkType, h.Index)
		}
	}
	wait := collect(t, context.Background(), hs, 4)
	if out, err := exec.Command("ip", "netns", "exec", a, "ping", "-c1", "-W2", "10.9.0.2").CombinedOutput(); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	got := wait()
	if len(got) != 4 {
		t.Fatalf("%d packets, want 4 (the count)", len(got))
	}
	for _, h := range hs {
		if h.Dropped() != 0 {
			t.Errorf("%s: %d dropped by the kernel, of a ping", h.Label, h.Dropped())
		}
	}
	var lines []string
	for _, p := range got {
		lines = append(lines, Line(p, hs[p.Iface].Interface))
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"a/va Out IP 10.9.0.1 > 10.9.0.2: ICMP echo request",
		"b/vb In  IP 10.9.0.1 > 10.9.0.2: ICMP echo request",
		"b/vb Out IP 10.9.0.2 > 10.9.0.1: ICMP echo reply",
		"a/va In  IP 10.9.0.2 > 10.9.0.1: ICMP echo reply",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}

	// The filter: TCP to port 9 passes, TCP to 10 does not; the capture
	// ends with its context, handing over what it had.
	hs, err = OpenAll([]Interface{{NS: b, Name: "vb"}}, "tcp port 9", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait = collect(t, ctx, hs, 0)
	for _, port := range []string{"10", "9"} {
		exec.Command("ip", "netns", "exec", a, "bash", "-c", "exec 3<>/dev/tcp/10.9.0.2/"+port).Run()
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	got = wait()
	if len(got) == 0 {
		t.Fatal("no packet of tcp port 9")
	}
	for _, p := range got {
		if l := Line(p, hs[0].Interface); !strings.Contains(l, ".9:") && !strings.Contains(l, ".9 >") {
			t.Errorf("filter tcp port 9 let through: %s", l)
		}
	}
}

// A TUN gives raw IP packets: its link type is Raw, and they decode.
func TestCaptureTUN(t *testing.T) {
	a, _ := pairNS(t)
	ipCmd(t, "-n", a, "tuntap", "add", "dev", "tun0", "mode", "tun")
	ipCmd(t, "-n", a, "addr", "add", "10.8.0.1/24", "dev", "tun0")
	ipCmd(t, "-n", a, "link", "set", "tun0", "up")
	// A TUN nobody holds has no carrier and sends nothing: hold it, as a
	// reflector would.
	h, err := namespace.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = namespace.Do(h, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		ifr, err := unix.NewIfreq("tun0")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	})
	if err != nil {
		t.Fatalf("attach tun0: %v", err)
	}
	hs, err := OpenAll([]Interface{{NS: a, Name: "tun0", Label: "a/tun0"}}, "icmp", 0)
	if err != nil {
		t.Fatal(err)
	}
	if hs[0].LinkType != layers.LinkTypeRaw {
		t.Fatalf("TUN link type %s, want Raw", hs[0].LinkType)
	}
	wait := collect(t, context.Background(), hs, 1)
	// Nobody reads the TUN, so the request goes out and nothing answers.
	exec.Command("ip", "netns", "exec", a, "ping", "-c1", "-W1", "10.8.0.2").Run()
	got := wait()
	if l := Line(got[0], hs[0].Interface); !strings.Contains(l, "a/tun0 Out IP 10.8.0.1 > 10.8.0.2: ICMP echo request") {
		t.Errorf("TUN packet: %s", l)
	}
}

// Errors name the interface and what went wrong.
func TestOpenErrors(t *testing.T) {
	a, _ := pairNS(t)
	if _, err := Open(a, "nothere", "", 0); err == nil || !strings.Contains(err.Error(), a+"/nothere") {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := Open(a, "va", "tcp port", 0); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("bad filter: %v", err)
	}
	if _, err := Open("no-such-ns", "va", "", 0); err == nil {
		t.Error("missing namespace: no error")
	}
}
