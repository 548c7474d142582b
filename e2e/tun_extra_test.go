package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// inLabNS runs fn on a thread inside namespace ns: sockets it opens live
// there.
func inLabNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	h, err := namespace.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := namespace.Do(h, fn); err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// echoPacket is an ICMPv4 echo request or reply as a UDP bridge delivered it.
type echoPacket struct {
	src, dst string
	typ      byte   // 8 request, 0 reply
	id, seq  uint16 // identifier and sequence number
	payload  []byte
}

// parseEcho returns the echo message in the IPv4 packet pkt, checking that
// pkt is whole and exact: IPv4, no options, total length equal to the
// datagram's length, and both checksums right.
func parseEcho(pkt []byte) (echoPacket, error) {
	var e echoPacket
	switch {
	case len(pkt) < 28 || pkt[0] != 0x45:
		return e, fmt.Errorf("not an IPv4 packet without options: % x", pkt[:min(len(pkt), 20)])
	case int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt):
		return e, fmt.Errorf("IP total length %d, datagram %d bytes", binary.BigEndian.Uint16(pkt[2:4]), len(pkt))
	case pkt[9] != 1:
		return e, fmt.Errorf("protocol %d, not ICMP", pkt[9])
	case checksum(pkt[:20]) != 0:
		return e, fmt.Errorf("bad IPv4 header checksum")
	case checksum(pkt[20:]) != 0:
		return e, fmt.Errorf("bad ICMP checksum")
	}
	return echoPacket{
		src: net.IP(pkt[12:16]).String(), dst: net.IP(pkt[16:20]).String(), typ: pkt[20],
		id: binary.BigEndian.Uint16(pkt[24:26]), seq: binary.BigEndian.Uint16(pkt[26:28]),
		payload: pkt[28:],
	}, nil
}

// TestTunExtraUDPBridgeInNamespace: a TUN<->UDP bridge whose UDP socket is
// in another lab namespace (udp.namespace). A program in that namespace
// receives the exact IP packets of a ping sent into the TUN's subnet and
// sends each back reflected (source and destination swapped): the request
// comes back as a request to the pinging namespace, whose kernel answers it;
// that answer comes out too, goes back reflected, and the ping gets its
// replies. status shows the process; down leaves nothing.
func TestTunExtraUDPBridgeInNamespace(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	labUp(t, "testdata/tunextra/udp-ns.yaml", p, "tunx-udp")
	lab, app, peer := p+"tunx-udp", p+"app", p+"peer"

	// The bridge listens on peer's loopback, not the host's.
	if out := inNS(t, peer, "ss", "-Hlunp").out; !strings.Contains(out, "127.0.0.1:12346") || !strings.Contains(out, "netlab") {
		t.Errorf("no netlab UDP socket on 127.0.0.1:12346 in %s:\n%s", peer, out)
	}
	if out := sh(t, "ss", "-Hlunp"); strings.Contains(out, "127.0.0.1:12346 ") {
		t.Errorf("a socket on 127.0.0.1:12346 in the host:\n%s", out)
	}

	// Our program in peer: record every datagram, send echo messages back
	// reflected.
	var us *net.UDPConn
	inLabNS(t, peer, func() (err error) {
		us, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12345})
		return err
	})
	defer us.Close()
	bridge := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12346}
	var mu sync.Mutex
	var got [][]byte
	served := make(chan struct{})
	go func() {
		defer close(served)
		buf := make([]byte, 65536)
		for {
			n, from, err := us.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pkt := bytes.Clone(buf[:n])
			mu.Lock()
			got = append(got, pkt)
			mu.Unlock()
			if from.Port != 12346 || n < 20 || pkt[0]>>4 != 4 || pkt[9] != 1 {
				continue // IPv6 (the TUN's link-local) and anything else: not ours
			}
			r := bytes.Clone(pkt)
			copy(r[12:16], pkt[16:20])
			copy(r[16:20], pkt[12:16])
			us.WriteToUDP(r, bridge)
		}
	}()

	r := inNS(t, app, "ping", "-c", "3", "-i", "0.2", "-s", "100", "-W", "3", "10.10.0.9")
	if r.code != 0 || !strings.Contains(r.out, "3 received") {
		t.Errorf("ping through the bridge and the program in %s:\n%s", peer, r.out)
	}
	us.Close()
	<-served

	var reqs, replies []echoPacket
	mu.Lock()
	for _, pkt := range got {
		if len(pkt) == 0 || pkt[0]>>4 != 4 {
			continue
		}
		e, err := parseEcho(pkt)
		if err != nil {
			t.Errorf("datagram is not an exact echo packet: %v", err)
			continue
		}
		switch {
		case e.typ == 8 && e.src == "10.10.0.1" && e.dst == "10.10.0.9":
			reqs = append(reqs, e)
		case e.typ == 0 && e.src == "10.10.0.1" && e.dst == "10.10.0.9":
			replies = append(replies, e) // app's kernel answering the reflected request
		default:
			t.Errorf("unexpected echo packet %+v", e)
		}
	}
	mu.Unlock()
	if len(reqs) != 3 || len(replies) != 3 {
		t.Fatalf("got %d echo requests and %d replies from the bridge, want 3 and 3", len(reqs), len(replies))
	}
	for i, q := range reqs {
		if len(q.payload) != 100 || replies[i].id != q.id || replies[i].seq != q.seq || !bytes.Equal(replies[i].payload, q.payload) {
			t.Errorf("request %d (id %d seq %d, %d bytes) and its reply (id %d seq %d) differ",
				i, q.id, q.seq, len(q.payload), replies[i].id, replies[i].seq)
		}
	}

	// status: the bridge, in app, with its socket's namespace, has counted
	// the traffic (stats are written every second).
	out := mustNetlab(t, "status", lab)
	if !strings.Contains(out, "netlab reflect on tun1") || !strings.Contains(out, "--udp-ns "+peer) {
		t.Errorf("status does not show the bridge:\n%s", out)
	}
	var pid int
	var packets uint64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if pid, packets = reflectorPID(t, lab, app); packets >= 12 {
			break
		}
	}
	if pid == 0 || packets < 12 {
		t.Errorf("status --json: bridge pid %d with %d packets, want 12 or more (6 each way)", pid, packets)
	}

	mustNetlab(t, "down", lab)
	if pid != 0 && len(alive([]int{pid})) != 0 {
		t.Errorf("bridge %d still runs after down", pid)
	}
	sameHost(t, before)
}

// tunLink reads a TUN/TAP device's attributes in namespace ns.
func tunLink(t *testing.T, ns, name string) *netlink.Tuntap {
	t.Helper()
	var tt *netlink.Tuntap
	inLabNS(t, ns, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		var ok bool
		if tt, ok = l.(*netlink.Tuntap); !ok {
			return fmt.Errorf("%s is a %s", name, l.Type())
		}
		return nil
	})
	return tt
}

// tunFlags reads /sys/class/net/NAME/tun_flags in namespace ns (ip netns
// exec mounts the namespace's /sys).
func tunFlags(t *testing.T, ns, name string) uint64 {
	t.Helper()
	r := inNS(t, ns, "cat", "/sys/class/net/"+name+"/tun_flags")
	v, err := strconv.ParseUint(strings.TrimSpace(r.out), 0, 32)
	if r.code != 0 || err != nil {
		t.Fatalf("tun_flags of %s in %s: %v\n%s", name, ns, err, r.out)
	}
	return v
}

// buildAttachq builds the attachq helper (it runs as an unprivileged user).
func buildAttachq(t *testing.T) string {
	t.Helper()
	return buildProgram(t, "./testdata/tunextra/attachq", "attachq")
}

// asNobody returns the arguments of `ip` that run a command in namespace ns
// as uid/gid 65534 with no capability. As in TestTapMAC, the user gets a
// 0666 /dev/net/tun of its own in the private mount namespace of `ip netns
// exec`, so the host's device node is never changed.
func asNobody(ns string, cmd ...string) []string {
	const script = "mount -t tmpfs netlab-test /dev/net && mknod -m 666 /dev/net/tun c 10 200 && exec setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all -- \"$@\""
	return append([]string{"netns", "exec", ns, "sh", "-c", script, "sh"}, cmd...)
}

const (
	iffMultiQueue = 0x100  // IFF_MULTI_QUEUE
	iffVnetHdr    = 0x4000 // IFF_VNET_HDR
)

// TestTunExtraMultiQueueTap: a TAP with multi-queue and vnet-hdr, owned by
// uid 65534. After up the device is multi-queue with virtio headers; its
// owner, with no capability, attaches two queues at once (and a
// single-queue attach is refused), and netlab tap-mac works on it, with
// queues attached or not, leaving the device's flags as they were. A second
// up changes nothing.
func TestTunExtraMultiQueueTap(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "tap-mq.yaml", readFile(t, "testdata/tunextra/tap-mq.yaml"))
	labUp(t, file, p, "tunx-tap")
	lab, vm := p+"tunx-tap", p+"vm"

	tt := tunLink(t, vm, "tap0")
	if tt.Mode != netlink.TUNTAP_MODE_TAP || tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || tt.Flags&netlink.TUNTAP_VNET_HDR == 0 ||
		tt.Flags&netlink.TUNTAP_NO_PI == 0 || tt.Owner != 65534 || tt.Group != 65534 || tt.NonPersist {
		t.Fatalf("tap0 after up: mode %v flags %v owner %d group %d nonpersist %v; want a persistent multi-queue vnet_hdr tap of 65534:65534",
			tt.Mode, tt.Flags, tt.Owner, tt.Group, tt.NonPersist)
	}
	flags := tunFlags(t, vm, "tap0")
	if flags&iffMultiQueue == 0 || flags&iffVnetHdr == 0 {
		t.Errorf("tun_flags %#x: want IFF_MULTI_QUEUE (0x100) and IFF_VNET_HDR (0x4000)", flags)
	}
	index := tt.Index

	// A second up: nothing to do, the same device.
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("second up is not a no-op:\n%s", out)
	}
	if tt := tunLink(t, vm, "tap0"); tt.Index != index {
		t.Errorf("second up remade tap0 (ifindex %d, was %d)", tt.Index, index)
	}

	// As the owner: two queues at once, then tap-mac with both attached.
	attachq := buildAttachq(t)
	r := run(t, nil, "ip", asNobody(vm, attachq, "tap0", "2", netlabBin, "tap-mac", "tap0", "02:11:22:33:44:66")...)
	if r.code != 0 || !strings.Contains(r.out, "attached 2\n") || !strings.Contains(r.out, "single-queue attach: invalid argument") ||
		!strings.Contains(r.out, "MAC set to 02:11:22:33:44:66") {
		t.Fatalf("attachq as uid 65534: exit %d\n%s", r.code, r.out)
	}
	// The queues went with the helper.
	if tt := tunLink(t, vm, "tap0"); tt.Queues != 0 || tt.Attrs().HardwareAddr.String() != "02:11:22:33:44:66" {
		t.Errorf("after the helper: %d queues attached, MAC %s", tt.Queues, tt.Attrs().HardwareAddr)
	}
	// tap-mac with no queue attached is the first attach, which sets the
	// device's flags: they must stay as they were.
	r = run(t, nil, "ip", asNobody(vm, netlabBin, "tap-mac", "tap0", "02:11:22:33:44:77")...)
	if r.code != 0 {
		t.Fatalf("netlab tap-mac as uid 65534: exit %d\n%s", r.code, r.out)
	}
	if got := tunFlags(t, vm, "tap0"); got != flags {
		t.Errorf("tun_flags %#x after tap-mac, were %#x", got, flags)
	}
	if tt := tunLink(t, vm, "tap0"); tt.Attrs().HardwareAddr.String() != "02:11:22:33:44:77" || tt.Index != index {
		t.Errorf("after tap-mac: MAC %s ifindex %d", tt.Attrs().HardwareAddr, tt.Index)
	}
	// The file's MAC is the lab's: up puts it back, on the same device.
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	if tt := tunLink(t, vm, "tap0"); tt.Attrs().HardwareAddr.String() != "d6:27:b8:30:55:93" || tt.Index != index {
		t.Errorf("up after tap-mac: MAC %s ifindex %d (was %d)", tt.Attrs().HardwareAddr, tt.Index, index)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}

// TestTunExtraTapFlagChange: turning multi-queue off in the file makes up
// make the TAP again, single-queue (the kernel cannot change that flag of a
// device), with the file's other settings; so does a new owner. The next up
// is a no-op each time.
func TestTunExtraTapFlagChange(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "tap-mq.yaml", readFile(t, "testdata/tunextra/tap-mq.yaml"))
	labUp(t, file, p, "tunx-tap")
	lab, vm := p+"tunx-tap", p+"vm"

	// edit changes the file, brings it up and returns the TAP, which must
	// have been made again (a new ifindex).
	edit := func(old, new string) *netlink.Tuntap {
		t.Helper()
		index := tunLink(t, vm, "tap0").Index
		writeFile(t, dir, "tap-mq.yaml", strings.Replace(readFile(t, file), old, new, 1))
		plan := mustNetlab(t, "plan", "--prefix", p, file)
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		tt := tunLink(t, vm, "tap0")
		if tt.Index == index {
			t.Errorf("%s -> %s: tap0 not made again (ifindex %d); plan was:\n%s", old, new, index, plan)
		}
		if tt.Mode != netlink.TUNTAP_MODE_TAP || tt.Flags&netlink.TUNTAP_VNET_HDR == 0 || tt.Attrs().HardwareAddr.String() != "d6:27:b8:30:55:93" {
			t.Errorf("%s -> %s: remade tap0 lost settings of the file: mode %v flags %v MAC %s",
				old, new, tt.Mode, tt.Flags, tt.Attrs().HardwareAddr)
		}
		if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
			t.Errorf("%s -> %s: the next up is not a no-op:\n%s", old, new, out)
		}
		return tt
	}
	if tt := edit("multi-queue: true", "multi-queue: false"); tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 || tt.Owner != 65534 || tt.Group != 65534 {
		t.Errorf("multi-queue: false: tap0 flags %v owner %d group %d", tt.Flags, tt.Owner, tt.Group)
	}
	if tt := edit("owner: 65534, group: 65534", "owner: 1000, group: 1000"); tt.Owner != 1000 || tt.Group != 1000 || tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		t.Errorf("owner 1000: tap0 flags %v owner %d group %d", tt.Flags, tt.Owner, tt.Group)
	}

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
