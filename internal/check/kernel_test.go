package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces, raw sockets") }

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}

// inNS runs fn inside the named namespace.
func inNS(t *testing.T, name string, fn func() error) {
	t.Helper()
	ns, err := namespace.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := namespace.Do(ns, fn); err != nil {
		t.Fatalf("in %s: %v", name, err)
	}
}

// twoNamespaces builds a and b joined by a veth:
//
//	a: va 10.77.0.1/24 fd00:77::1/64, default via 10.77.0.2
//	b: vb 10.77.0.2/24 fd00:77::2/64, not forwarding (drops what is not for it)
//
// and deletes both when the test ends.
func twoNamespaces(t *testing.T) (a, b string) {
	t.Helper()
	prefix := testkit.Name(t, "nlc", 4)
	a, b = prefix+"a", prefix+"b"
	// Registered first, so it runs after every other cleanup. Other tests on
	// the machine add and remove namespaces meanwhile: only ours must be gone.
	t.Cleanup(func() {
		for _, line := range strings.Split(netnsList(t), "\n") {
			if strings.HasPrefix(line, prefix) {
				t.Errorf("ip netns list still shows %q after cleanup", line)
			}
		}
	})
	for _, n := range []string{a, b} {
		if err := namespace.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := namespace.Delete(n); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	run(t, "ip", "-n", a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", b)
	run(t, "ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "va")
	run(t, "ip", "-n", a, "addr", "add", "fd00:77::1/64", "dev", "va", "nodad")
	run(t, "ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", "vb")
	run(t, "ip", "-n", b, "addr", "add", "fd00:77::2/64", "dev", "vb", "nodad")
	for _, l := range [][2]string{{a, "va"}, {a, "lo"}, {b, "vb"}, {b, "lo"}} {
		run(t, "ip", "-n", l[0], "link", "set", l[1], "up")
	}
	// 10.78.0.1 is routed to b, which silently drops it: a probe there times
	// out instead of failing at once with "network is unreachable".
	run(t, "ip", "-n", a, "route", "add", "default", "via", "10.77.0.2")
	inNS(t, b, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0) })
	return a, b
}

func TestProbesAgainstKernel(t *testing.T) {
	requireRoot(t)
	a, b := twoNamespaces(t)

	// In b: a TCP listener, a UDP echo server, and a UDP socket that never
	// answers.
	var ln net.Listener
	var echoUDP, mute net.PacketConn
	inNS(t, b, func() error {
		var err error
		if ln, err = net.Listen("tcp", "10.77.0.2:0"); err != nil {
			return err
		}
		if echoUDP, err = net.ListenPacket("udp", "10.77.0.2:0"); err != nil {
			return err
		}
		mute, err = net.ListenPacket("udp", "10.77.0.2:0")
		return err
	})
	t.Cleanup(func() { ln.Close(); echoUDP.Close(); mute.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echoUDP.ReadFrom(buf)
			if err != nil {
				return
			}
			echoUDP.WriteTo(buf[:n], from)
		}
	}()
	port := func(a net.Addr) int {
		p, _ := strconv.Atoi(a.String()[strings.LastIndex(a.String(), ":")+1:])
		return p
	}
	tcpPort, udpPort, mutePort := port(ln.Addr()), port(echoUDP.LocalAddr()), port(mute.LocalAddr())

	ip := netip.MustParseAddr
	probes := []Probe{
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: Ping, Want: true},
		{From: a, To: "fd00:77::2", Addr: ip("fd00:77::2"), Kind: Ping, Want: true},
		{From: a, To: "10.77.0.99", Addr: ip("10.77.0.99"), Kind: Ping, Want: false},
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: TCP, Port: tcpPort, Want: true},
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: TCP, Port: 9, Want: false},
		{From: a, To: "10.78.0.1", Addr: ip("10.78.0.1"), Kind: TCP, Port: 22, Want: false},
		{From: a, To: "fd00:99::1", Addr: ip("fd00:99::1"), Kind: TCP, Port: 22, Want: false},
		{From: a + "-missing", To: b, Addr: ip("10.77.0.2"), Kind: Ping, Want: false},
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: UDP, Port: udpPort, Want: true},
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: UDP, Port: 9, Want: false},
		{From: a, To: b, Addr: ip("10.77.0.2"), Kind: UDP, Port: mutePort, Want: false},
		{From: b, To: "fd00:77::1", Addr: ip("fd00:77::1"), Kind: TCP, Port: 9, Want: false},
	}
	for i := range probes {
		probes[i].Index = i
	}
	// Each check: pass?, and a word its Detail must contain.
	want := []struct {
		pass   bool
		detail string
	}{
		{true, "2/2 replies"},
		{true, "2/2 replies"},
		{true, "0/2 replies, timeout after 1s"},
		{true, "connected"},
		{true, "refused"},
		{true, "timeout after 1s"},
		{true, "network is unreachable"},
		{false, "no namespace " + a + "-missing"},
		{true, "reply of 13 bytes"},
		{true, "closed (port unreachable)"},
		{true, "no reply (udp cannot tell open from filtered)"},
		{true, "refused"},
	}
	// Twice at most: the probes' timeouts are 1 s, and a machine busy with
	// other tests' namespaces once stalled this one for longer (every probe
	// from a timed out, "network is unreachable" included, which answers at
	// once). A fault of the probes fails both runs.
	var res []Result
	var wrong []string
	for run := 1; run <= 2; run++ {
		start := time.Now()
		res = Run(context.Background(), probes, Options{Timeout: time.Second})
		t.Logf("run %d: %d probes in %v:\n%s", run, len(probes), time.Since(start).Round(time.Millisecond), Table(res))
		wrong = nil
		for i, r := range res {
			if r.Index != i {
				t.Fatalf("result %d is probe %d: order lost", i, r.Index)
			}
			if r.Pass != want[i].pass || !strings.Contains(r.Detail, want[i].detail) {
				wrong = append(wrong, fmt.Sprintf("probe %d (%s %s %s): Pass=%v Detail=%q, want Pass=%v and %q",
					i, r.From, r.Kind, r.To, r.Pass, r.Detail, want[i].pass, want[i].detail))
			}
		}
		if len(wrong) == 0 {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
	if r := res[7]; r.Err == nil || r.Got {
		t.Errorf("missing namespace: Got=%v Err=%v, want Err", r.Got, r.Err)
	}

	t.Run("ping socket fallback", func(t *testing.T) {
		saved := pingModes
		pingModes = []pingMode{dgramICMP}
		t.Cleanup(func() { pingModes = saved })
		// A new namespace allows ping sockets to nobody ("1 0").
		inNS(t, a, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647\n"), 0)
		})
		res := Run(context.Background(), []Probe{
			{From: a, To: b, Addr: ip("10.77.0.2"), Kind: Ping, Want: true},
			{From: a, To: "fd00:77::2", Addr: ip("fd00:77::2"), Kind: Ping, Want: true},
			{From: a, To: "10.77.0.99", Addr: ip("10.77.0.99"), Kind: Ping, Want: false},
		}, Options{Timeout: 500 * time.Millisecond})
		t.Logf("\n%s", Table(res))
		for _, r := range res {
			if !r.Pass {
				t.Errorf("%s: %s", r.To, r.Detail)
			}
		}
	})

	t.Run("parallel", func(t *testing.T) {
		var many []Probe
		for i := range 20 {
			many = append(many, Probe{Index: i, From: a, To: b, Addr: ip("10.77.0.2"), Kind: Ping, Want: true})
		}
		time1 := func(parallel int) time.Duration {
			start := time.Now()
			for _, r := range Run(context.Background(), many, Options{Parallel: parallel}) {
				if !r.Pass {
					t.Errorf("parallel=%d: probe %d: %s", parallel, r.Index, r.Detail)
				}
			}
			return time.Since(start)
		}
		serial, parallel := time1(1), time1(20)
		t.Logf("20 pings: serial %v, parallel %v, speed-up %.1fx", serial.Round(time.Millisecond),
			parallel.Round(time.Millisecond), float64(serial)/float64(parallel))
	})

	t.Run("canceled mid-probe", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ctx, cancelNow := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancelNow)
		start := time.Now()
		res := Run(ctx, []Probe{{From: a, To: "10.78.0.1", Addr: ip("10.78.0.1"), Kind: TCP, Port: 22},
			{From: a, To: "10.77.0.99", Addr: ip("10.77.0.99"), Kind: Ping}}, Options{Timeout: 5 * time.Second})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("canceled run took %v", d)
		}
		for _, r := range res {
			if r.Pass || !errors.Is(r.Err, context.Canceled) {
				t.Errorf("%s %s: Pass=%v Err=%v, want canceled", r.Kind, r.To, r.Pass, r.Err)
			}
		}
	})
}
