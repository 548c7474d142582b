package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// requireTcpdump: netlab capture compiles filters with tcpdump, and the
// tests read captures with it, as a user would.
func requireTcpdump(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		testkit.SkipOrFail(t, "tcpdump is missing (make deps)")
	}
}

// capturing is a `netlab capture` running in the background.
type capturing struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

// startCapture starts netlab capture and returns once it says its sockets
// are open ("capturing on"): every packet after that is captured.
func startCapture(t *testing.T, args ...string) *capturing {
	t.Helper()
	c := &capturing{cmd: exec.Command(netlabBin, append([]string{"capture"}, args...)...), done: make(chan error, 1)}
	c.cmd.Stdout = &c.stdout
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		said := false
		for sc.Scan() {
			c.stderr.WriteString(sc.Text() + "\n")
			if !said && strings.Contains(sc.Text(), "capturing on") {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
		c.done <- c.cmd.Wait()
	}()
	// Ours: end it by its PID whatever happens.
	t.Cleanup(func() { c.cmd.Process.Kill() })
	select {
	case ok := <-ready:
		if !ok {
			<-c.done
			t.Fatalf("netlab capture %s did not start:\n%s", strings.Join(args, " "), c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("netlab capture %s: not capturing after 20s:\n%s", strings.Join(args, " "), c.stderr.String())
	}
	return c
}

// wait waits for the capture to end by itself and returns its exit code.
func (c *capturing) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case err := <-c.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("netlab capture did not end within %v:\n%s", timeout, c.stderr.String())
	}
	return -1
}

// echoPairs checks tcpdump's reading of a capture: for each of seqs, n
// echo requests blue -> red and n replies back, and nothing but ICMP echo.
func echoPairs(t *testing.T, tcpdumpOut string, n int, seqs ...int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(tcpdumpOut), "\n")
	for _, seq := range seqs {
		req := regexp.MustCompile(fmt.Sprintf(`IP 10\.0\.0\.1 > 10\.0\.0\.2: ICMP echo request, id \d+, seq %d, length 64`, seq))
		rep := regexp.MustCompile(fmt.Sprintf(`IP 10\.0\.0\.2 > 10\.0\.0\.1: ICMP echo reply, id \d+, seq %d, length 64`, seq))
		if got := len(req.FindAllString(tcpdumpOut, -1)); got != n {
			t.Errorf("seq %d: %d echo requests 10.0.0.1 > 10.0.0.2, want %d:\n%s", seq, got, n, tcpdumpOut)
		}
		if got := len(rep.FindAllString(tcpdumpOut, -1)); got != n {
			t.Errorf("seq %d: %d echo replies 10.0.0.2 > 10.0.0.1, want %d:\n%s", seq, got, n, tcpdumpOut)
		}
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "reading from") {
			continue
		}
		if !strings.Contains(l, "ICMP echo") {
			t.Errorf("filter icmp let through: %s", l)
		}
	}
}

// TestCapture: netlab capture on the shipped blue-red lab, read back with
// tcpdump as a user would: a ping captured on blue's veth and on its OVS
// port, the filter, --count, --duration, SIGTERM, standard output, several
// interfaces in one pcapng; the host identical afterwards.
func TestCapture(t *testing.T) {
	requireRoot(t)
	requireTcpdump(t)
	hostRoutesFree(t, "10.0.0.0/24", "fd00:10::/64")
	before := fingerprint(t)
	p := newPrefix(t)
	labUp(t, "../labs/blue-red.yaml", p, "blue-red")
	lab, blue := p+"blue-red", p+"blue"
	dir := t.TempDir()
	ping(t, blue, "10.0.0.2") // ARP and learning done: what follows is echo only

	t.Run("blue's veth and the OVS port into one pcapng", func(t *testing.T) {
		file := filepath.Join(dir, "ping.pcapng")
		c := startCapture(t, lab, "blue/veth1", "host/veth0", "-w", file, "--count", "8", "icmp")
		// A TCP connection attempt the filter leaves out (red answers RST).
		inNS(t, blue, "bash", "-c", "exec 3<>/dev/tcp/10.0.0.2/5201")
		inNS(t, blue, "ping", "-c", "2", "-i", "0.2", "10.0.0.2")
		if code := c.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("capture: exit %d\n%s", code, c.stderr.String())
		}
		if !strings.Contains(c.stderr.String(), "8 packets captured\n") {
			t.Errorf("capture's report:\n%s", c.stderr.String())
		}
		// An AF_XDP port (the default where the kernel allows it) is read
		// on its peer, and the capture says so.
		if st := mustNetlab(t, "status", lab); strings.Contains(st, "veth0(1, afxdp") != strings.Contains(c.stderr.String(), "host/"+p+"veth0 is an AF_XDP port") {
			t.Errorf("AF_XDP port and the capture's note disagree:\n%s\n%s", st, c.stderr.String())
		}
		out := sh(t, "tcpdump", "-n", "-r", file)
		// Each packet once on blue's veth and once on the port.
		echoPairs(t, out, 2, 1, 2)

		// The interfaces are named in the file, and each packet names its own.
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		perIface := map[int]int{}
		for {
			_, ci, err := r.ReadPacketData()
			if err != nil {
				break
			}
			perIface[ci.InterfaceIndex]++
		}
		var names []string
		for i := 0; i < r.NInterfaces(); i++ {
			ng, _ := r.Interface(i)
			names = append(names, ng.Name)
		}
		if strings.Join(names, ",") != "blue/veth1,host/"+p+"veth0" || perIface[0] != 4 || perIface[1] != 4 {
			t.Errorf("interfaces %v, packets per interface %v; want blue/veth1 and host/%sveth0 with 4 each", names, perIface, p)
		}
	})

	t.Run("printed lines and --count", func(t *testing.T) {
		c := startCapture(t, lab, "red/veth3", "--count", "2", "icmp")
		inNS(t, blue, "ping", "-c", "3", "-i", "0.2", "10.0.0.2")
		if code := c.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("capture: exit %d\n%s", code, c.stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(c.stdout.String()), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "red/veth3 In  IP 10.0.0.1 > 10.0.0.2: ICMP echo request") ||
			!strings.Contains(lines[1], "red/veth3 Out IP 10.0.0.2 > 10.0.0.1: ICMP echo reply") {
			t.Errorf("capture --count 2 printed:\n%s", c.stdout.String())
		}
	})

	t.Run("--duration ends it", func(t *testing.T) {
		start := time.Now()
		c := startCapture(t, lab, "host/ovsbr0", "--duration", "1s")
		if code := c.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("capture: exit %d\n%s", code, c.stderr.String())
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("--duration 1s ended after %v", d)
		}
	})

	t.Run("SIGTERM ends it with the file complete", func(t *testing.T) {
		file := filepath.Join(dir, "term.pcap")
		c := startCapture(t, lab, "red/veth3", "-w", file, "icmp")
		inNS(t, blue, "ping", "-c", "2", "-i", "0.2", "10.0.0.2")
		time.Sleep(200 * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGTERM)
		if code := c.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("capture after SIGTERM: exit %d\n%s", code, c.stderr.String())
		}
		out := sh(t, "tcpdump", "-n", "-r", file)
		if !strings.Contains(out, "link-type EN10MB") {
			t.Errorf("-w x.pcap is not a pcap of Ethernet:\n%s", out)
		}
		echoPairs(t, out, 1, 1, 2)
	})

	t.Run("-w - to a reader of standard output", func(t *testing.T) {
		c := startCapture(t, lab, "blue/veth1", "-w", "-", "--count", "4", "icmp")
		inNS(t, blue, "ping", "-c", "2", "-i", "0.2", "10.0.0.2")
		if code := c.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("capture: exit %d\n%s", code, c.stderr.String())
		}
		td := exec.Command("tcpdump", "-n", "-r", "-")
		td.Stdin = bytes.NewReader(c.stdout.Bytes())
		out, err := td.CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump -r - of the capture's standard output: %v\n%s", err, out)
		}
		echoPairs(t, string(out), 1, 1, 2)
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{lab, "blue/nothere"}, 2, "no interface nothere in blue"},
			{[]string{lab, "green/veth1"}, 2, "no namespace green"},
			{[]string{lab, "blue/veth1", "tcp", "port"}, 2, "syntax error"},
			{[]string{p + "nolab", "blue/veth1"}, 1, "not running"},
		} {
			r := netlab(t, append([]string{"capture"}, c.args...)...)
			if r.code != c.code || !strings.Contains(r.out, c.want) {
				t.Errorf("netlab capture %s: exit %d, want %d with %q\n%s", strings.Join(c.args, " "), r.code, c.code, c.want, r.out)
			}
		}
	})

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
