package netlabtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// The fixture's Capture sees the TCP handshake of a Dial, in order, on the
// server's interface and on the bridge port on the host side; the filter
// keeps the pings out.
func TestCaptureSeesDialHandshake(t *testing.T) {
	lab := Up(t, "testdata/pair.yaml")
	server := lab.Capture(t, "b", "eth0", CaptureFilter("tcp"))
	port := lab.Capture(t, "host", "pb") // the bridge port of b's eth0
	ln, err := lab.Listen("b", "tcp", lab.Addr("b", "eth0")+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	lab.Ping(t, "a", "b")
	c, err := lab.Dial("a", "tcp", ln.Addr().String(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	flags := func(syn, ack bool) func(Packet) bool {
		return func(p Packet) bool {
			tcp := p.TCP()
			return tcp != nil && tcp.SYN == syn && tcp.ACK == ack && !tcp.FIN && !tcp.RST && len(tcp.Payload) == 0
		}
	}
	syn := server.Wait(t, flags(true, false), 5*time.Second)
	synAck := server.Wait(t, flags(true, true), 5*time.Second)
	ack := server.Wait(t, flags(false, true), 5*time.Second)
	if syn.Outgoing || !synAck.Outgoing || ack.Outgoing {
		t.Errorf("directions on b's eth0: SYN out %v, SYN-ACK out %v, ACK out %v; want in, out, in", syn.Outgoing, synAck.Outgoing, ack.Outgoing)
	}
	if !syn.Time.Before(synAck.Time) || synAck.Time.After(ack.Time) {
		t.Errorf("handshake out of order: %v %v %v", syn.Time, synAck.Time, ack.Time)
	}
	if synAck.TCP().Ack != syn.TCP().Seq+1 || ack.TCP().Ack != synAck.TCP().Seq+1 {
		t.Errorf("handshake numbers: SYN %d, SYN-ACK %d ack %d, ACK ack %d", syn.TCP().Seq, synAck.TCP().Seq, synAck.TCP().Ack, ack.TCP().Ack)
	}
	ip, ok := syn.NetworkLayer().(*layers.IPv4)
	if !ok || ip.SrcIP.String() != lab.Addr("a", "eth0") {
		t.Errorf("SYN's IP layer: %v", syn.NetworkLayer())
	}
	if want := "b/eth0 In  IP " + lab.Addr("a", "eth0"); !strings.HasPrefix(syn.String(), want) || !strings.Contains(syn.String(), "Flags [S]") {
		t.Errorf("SYN prints as %q, want %q... Flags [S]", syn, want)
	}
	for _, p := range server.Packets() {
		if p.Layer(layers.LayerTypeICMPv4) != nil {
			t.Errorf("filter tcp let an ICMP packet through: %s", p)
		}
	}
	// The host side of the bridge: the SYN went out of the port to b, and
	// the ping too (no filter there).
	port.Wait(t, func(p Packet) bool { return p.Outgoing && flags(true, false)(p) }, 5*time.Second)
	port.Wait(t, func(p Packet) bool { return p.Layer(layers.LayerTypeICMPv4) != nil }, 5*time.Second)
	if got := port.Packets()[0].Iface; got != "host/pb" {
		t.Errorf("port capture named %q, want host/pb", got)
	}
}

// A test that fails leaves its capture as a pcapng file that tcpdump reads,
// and says where; one that passes leaves none. Both run as a child test
// binary, the first failing on purpose.
func TestCaptureSavedWhenTestFails(t *testing.T) {
	if mode := os.Getenv("NETLAB_CAPTURE_CHILD"); mode != "" {
		captureChild(t, mode == "fail")
		return
	}
	RequireRoot(t)
	child := func(mode string, args ...string) (string, error) {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestCaptureSavedWhenTestFails$", "-test.v"}, args...)...)
		cmd.Env = append(os.Environ(), "NETLAB_CAPTURE_CHILD="+mode)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// go test -artifacts: into the test's artifact directory.
	outDir := t.TempDir()
	out, err := child("fail", "-test.artifacts", "-test.outputdir="+outDir)
	if err == nil || !strings.Contains(out, "--- FAIL: TestCaptureSavedWhenTestFails") || !strings.Contains(out, "failing on purpose") {
		t.Fatalf("child that fails on purpose: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`saved to (\S+\.pcapng)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("child does not say where its capture is:\n%s", out)
	}
	path := m[1]
	if !strings.HasPrefix(path, filepath.Join(outDir, "_artifacts")) {
		t.Errorf("capture saved to %s, want under %s/_artifacts", path, outDir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s is not pcapng: %v", path, err)
	}
	if ng, _ := r.Interface(0); ng.Name != "a/eth0" {
		t.Errorf("interface in the file: %q, want a/eth0", ng.Name)
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		skipOrFail(t, "tcpdump not installed (make deps): it reads the file")
	}
	td, err := exec.Command("tcpdump", "-n", "-r", path).CombinedOutput()
	if err != nil || !strings.Contains(string(td), "ICMP echo request") || !strings.Contains(string(td), "ICMP echo reply") {
		t.Errorf("tcpdump -r %s: %v\n%s", path, err, td)
	}

	// Without -artifacts: into NETLAB_CAPTURE_DIR; a passing test: nothing.
	dir := t.TempDir()
	t.Setenv("NETLAB_CAPTURE_DIR", dir)
	if out, err := child("fail"); err == nil || !strings.Contains(out, "saved to "+dir+"/") {
		t.Errorf("failing child with NETLAB_CAPTURE_DIR: %v\n%s", err, out)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng")); len(files) != 1 {
		t.Errorf("files in NETLAB_CAPTURE_DIR after a failed test: %v", files)
	}
	pass := t.TempDir()
	t.Setenv("NETLAB_CAPTURE_DIR", pass)
	if out, err := child("pass"); err != nil || strings.Contains(out, "saved to") {
		t.Errorf("passing child: %v\n%s", err, out)
	}
	if files, _ := os.ReadDir(pass); len(files) != 0 {
		t.Errorf("a passing test left %v", files)
	}
}

// captureChild is the child's test: a capture of a ping, then a failure
// unless it is to pass.
func captureChild(t *testing.T, fail bool) {
	lab := Up(t, "testdata/pair.yaml")
	c := lab.Capture(t, "a", "eth0", CaptureFilter("icmp"))
	lab.Ping(t, "a", "b")
	c.Wait(t, func(p Packet) bool { return strings.Contains(p.String(), "echo reply") }, 5*time.Second)
	if fail {
		t.Fatal("failing on purpose, to leave a capture")
	}
}

// The fixture's Capture keeps 802.1Q tags the kernel moved out of the
// frame: a tagged ARP sent from a packet socket (as a trunk host does)
// arrives with its Dot1Q layer, and the filter `vlan 30` keeps it and leaves
// VLAN 20's out.
func TestCaptureKeepsVLANTags(t *testing.T) {
	lab := Up(t, "testdata/pair.yaml")
	c := lab.Capture(t, "b", "p2p", CaptureFilter("vlan 30"))
	frame := func(vid uint16) []byte {
		f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x30, 0x81, 0x00, byte(vid >> 8), byte(vid), 0x08, 0x06,
			0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x30, 10, 30, 0, 1, 0, 0, 0, 0, 0, 0, 10, 30, 0, 2}
		return append(f, make([]byte, 64-len(f))...)
	}
	err := lab.Do("a", func() error {
		ifi, err := net.InterfaceByName("p2p")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, vid := range []uint16{20, 30} {
			if err := unix.Sendto(fd, frame(vid), 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Wait(t, func(p Packet) bool { return p.Layer(layers.LayerTypeDot1Q) != nil }, 5*time.Second)
	q := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	if q.VLANIdentifier != 30 || p.Layer(layers.LayerTypeARP) == nil {
		t.Errorf("captured %s: VLAN %d, ARP inside %v", p, q.VLANIdentifier, p.Layer(layers.LayerTypeARP) != nil)
	}
	if !strings.Contains(p.String(), "vlan 30, p 0, ARP") {
		t.Errorf("prints as %q", p)
	}
	time.Sleep(200 * time.Millisecond)
	for _, p := range c.Packets() {
		if q, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); !ok || q.VLANIdentifier != 30 {
			t.Errorf("filter vlan 30 let through %s", p)
		}
	}
}
