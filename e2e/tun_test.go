package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/reflector"
)

type procJSON []struct {
	Namespaces []struct {
		Name      string `json:"name"`
		Processes []struct {
			Device  string `json:"device"`
			PID     int    `json:"pid"`
			Packets uint64 `json:"packets"`
		} `json:"processes"`
	} `json:"namespaces"`
}

func reflectorPID(t *testing.T, lab, ns string) (pid int, packets uint64) {
	t.Helper()
	var st procJSON
	if err := json.Unmarshal([]byte(mustNetlab(t, "status", lab, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st[0].Namespaces {
		if n.Name == ns && len(n.Processes) == 1 {
			return n.Processes[0].PID, n.Processes[0].Packets
		}
	}
	return 0, 0
}

// TestTunReflector: whole IPv4 and IPv6 prefixes answer from one namespace;
// TCP to a reflected address reaches a local listener both ways; the
// reflector holds no capability; kill -9 -> up restarts it; down leaves no
// process and no device.
func TestTunReflector(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	labUp(t, "../labs/tun-reflector.yaml", p, "tun-refl")
	lab, refl := p+"tun-refl", p+"refl"

	ping(t, refl, "10.0.0.41")
	ping(t, refl, "10.200.3.4")
	ping(t, refl, "fd2a:cd2c:8bc4:11ff::23")
	// TCP: a listener on the namespace's own stack; the connection to a
	// reflected address comes back to it (the listener sees the reflected
	// address as its peer) and carries data both ways.
	_, peers := listenIn(t, refl, "0.0.0.0:7001")
	if err := dialFrom(refl, "10.77.7.7:7001"); err != nil {
		t.Fatalf("TCP to a reflected address: %v", err)
	}
	if got := <-peers; got != "10.77.7.7" {
		t.Errorf("listener saw the connection from %s, want the reflected 10.77.7.7", got)
	}
	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "4 passed, 0 failed") {
		t.Errorf("check: %s", r)
	}

	// The reflector writes its counters every StatsInterval: wait for the
	// packets above to show.
	pid, packets := reflectorPID(t, lab, refl)
	for deadline := time.Now().Add(3 * reflector.StatsInterval); pid != 0 && packets == 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		pid, packets = reflectorPID(t, lab, refl)
	}
	if pid == 0 || packets == 0 {
		t.Fatalf("status shows reflector pid %d with %d packets", pid, packets)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "CapEff:\t0000000000000000") || !strings.Contains(string(status), "NoNewPrivs:\t1") {
		t.Errorf("reflector %d keeps privileges:\n%s", pid, status)
	}

	sh(t, "kill", "-9", fmt.Sprint(pid))
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(alive([]int{pid})) == 0 {
			break
		}
	}
	if plan := mustNetlab(t, "plan", "--prefix", p, "../labs/tun-reflector.yaml"); !strings.Contains(plan, "netlab reflect") {
		t.Errorf("plan after kill -9 does not restart the reflector:\n%s", plan)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, "../labs/tun-reflector.yaml")
	pid2, _ := reflectorPID(t, lab, refl)
	if pid2 == 0 || pid2 == pid {
		t.Errorf("reflector not restarted: pid %d after %d", pid2, pid)
	}
	ping(t, refl, "10.0.0.41")

	mustNetlab(t, "down", lab)
	if len(alive([]int{pid2})) != 0 {
		t.Errorf("reflector %d still runs after down", pid2)
	}
	sameHost(t, before)
}

// TestTunUDP: a ping into the TUN's subnet reaches a program on loopback as
// the exact IP packet in a UDP datagram, and the reply the program sends
// back appears in the namespace: the ping gets its answer through the test.
func TestTunUDP(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	// Our side: receive what the lab sends.
	us, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	// The lab's listen port: a free one.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	labPort := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	file := writeFile(t, t.TempDir(), "tun-udp.yaml", strings.NewReplacer(
		"127.0.0.1:12346", fmt.Sprintf("127.0.0.1:%d", labPort),
		"127.0.0.1:12345", us.LocalAddr().String(),
	).Replace(readFile(t, "../labs/tun-udp.yaml")))
	labUp(t, file, p, "tun-udp")

	done := make(chan result, 1)
	go func() { done <- inNS(t, p+"app", "ping", "-c", "1", "-W", "5", "10.10.0.9") }()
	buf := make([]byte, 65536)
	us.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pkt []byte
	for {
		n, _, err := us.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no datagram from the lab: %v", err)
		}
		// The kernel may send other packets (none expected for IPv4 here);
		// take the echo request.
		if n >= 28 && buf[0]>>4 == 4 && buf[9] == 1 && buf[20] == 8 {
			pkt = append([]byte(nil), buf[:n]...)
			break
		}
	}
	if got := net.IP(pkt[16:20]).String(); got != "10.10.0.9" || net.IP(pkt[12:16]).String() != "10.10.0.1" {
		t.Fatalf("datagram is not the ping's packet 10.10.0.1 -> 10.10.0.9: % x", pkt[:20])
	}
	// Answer it: swap the addresses, make the echo request a reply.
	reply := append([]byte(nil), pkt...)
	copy(reply[12:16], pkt[16:20])
	copy(reply[16:20], pkt[12:16])
	reply[20] = 0 // echo reply
	binary.BigEndian.PutUint16(reply[22:24], 0)
	binary.BigEndian.PutUint16(reply[22:24], checksum(reply[20:]))
	if _, err := us.WriteToUDP(reply, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: labPort}); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.code != 0 || !strings.Contains(r.out, "1 received") {
		t.Errorf("ping did not get the reply the test sent back:\n%s", r.out)
	}
	mustNetlab(t, "down", p+"tun-udp")
	sameHost(t, before)
}

// checksum is the Internet checksum of b (RFC 1071): what goes in a header's
// checksum field, and 0 over a header or message whose checksum is right.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestTapMAC: a TAP owned by an unprivileged user: as that user, with no
// capability, netlab tap-mac changes its MAC, where ip link set fails.
func TestTapMAC(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	file := writeFile(t, t.TempDir(), "tap.yaml", `name: tap
namespaces:
  vm:
    taps:
      tap0: {owner: 65534, group: 65534, mac: "d6:27:b8:30:55:92", vnet-hdr: true}
`)
	labUp(t, file, p, "tap")
	ns := p + "vm"
	if out := sh(t, "ip", "-n", ns, "link", "show", "tap0"); !strings.Contains(out, "d6:27:b8:30:55:92") {
		t.Fatalf("tap0 MAC from the file not set:\n%s", out)
	}
	// On Debian /dev/net/tun is 0666; on this machine it may be root-only.
	// Rather than change the host's device, the test gives the user a
	// 0666 node of its own, in the private mount namespace `ip netns exec`
	// runs the command in.
	const tunNode = "mount -t tmpfs netlab-test /dev/net && mknod -m $TUNMODE /dev/net/tun c 10 200 && exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all -- \"$@\""
	// With a device of mode 0600 (root's alone), tap-mac says why it
	// cannot, and how to fix it.
	r := run(t, []string{"TUNMODE=600"}, "ip", "netns", "exec", ns, "sh", "-c", tunNode, "sh", netlabBin, "tap-mac", "tap0", "02:11:22:33:44:55")
	if r.code != 1 || !strings.Contains(r.out, "mode 0600") || !strings.Contains(r.out, "0666") {
		t.Errorf("tap-mac with a 0600 /dev/net/tun: exit %d, want the mode and the fix:\n%s", r.code, r.out)
	}
	t.Setenv("TUNMODE", "666")
	asNobody := []string{"netns", "exec", ns, "sh", "-c", tunNode, "sh"}
	r = run(t, nil, "ip", append(asNobody, "ip", "link", "set", "dev", "tap0", "address", "02:11:22:33:44:55")...)
	if r.code == 0 || !strings.Contains(r.out, "Operation not permitted") {
		t.Errorf("ip link set as nobody: exit %d, want EPERM:\n%s", r.code, r.out)
	}
	r = run(t, nil, "ip", append(asNobody, netlabBin, "tap-mac", "tap0", "02:11:22:33:44:55")...)
	if r.code != 0 {
		t.Fatalf("netlab tap-mac as nobody: exit %d\n%s", r.code, r.out)
	}
	if out := sh(t, "ip", "-n", ns, "link", "show", "tap0"); !strings.Contains(out, "02:11:22:33:44:55") {
		t.Errorf("tap0 MAC not changed:\n%s", out)
	}
	// The file's MAC is the lab's: up puts it back (drift repaired).
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	mustNetlab(t, "down", p+"tap")
	sameHost(t, before)
}

// TestDoctor: on this machine the main job can run; with every capability
// dropped, doctor names the missing ones and exits non-zero.
func TestDoctor(t *testing.T) {
	requireRoot(t)
	out := mustNetlab(t, "doctor")
	if !strings.Contains(out, "netlab can bring labs up here") {
		t.Errorf("doctor:\n%s", out)
	}
	r := run(t, nil, "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", netlabBin, "doctor")
	if r.code != 1 || !strings.Contains(r.out, "FAIL  CAP_NET_ADMIN") || !strings.Contains(r.out, "FAIL  CAP_SYS_ADMIN") {
		t.Errorf("doctor without capabilities: exit %d\n%s", r.code, r.out)
	}
	// up without capabilities fails and points to doctor.
	r = run(t, nil, "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", netlabBin, "up", "--prefix", newPrefix(t), "testdata/pair.yaml")
	if r.code == 0 || !strings.Contains(r.out, "netlab doctor") {
		t.Errorf("up without capabilities: exit %d\n%s", r.code, r.out)
	}
}

// alive is proc.Alive: the pids that still run.
func alive(pids []int) []int { return proc.Alive(pids) }
