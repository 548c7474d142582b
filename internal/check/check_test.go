package check

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

func TestTableGolden(t *testing.T) {
	a := netip.MustParseAddr
	results := []Result{
		{Probe: Probe{Index: 0, From: "blue", To: "red", Addr: a("10.0.0.2"), Kind: Ping, Want: true},
			Got: true, Pass: true, Detail: "2/2 replies, 0.05 ms"},
		{Probe: Probe{Index: 1, From: "blue", To: "10.0.0.254", Addr: a("10.0.0.254"), Kind: TCP, Port: 22, Want: false},
			Got: false, Pass: true, Detail: "timeout after 2s"},
		{Probe: Probe{Index: 2, From: "blue", To: "fd00:10::2", Addr: a("fd00:10::2"), Kind: Ping, Want: true},
			Got: false, Pass: false, Detail: "0/2 replies, address unreachable from fd00:10::1"},
		{Probe: Probe{Index: 3, From: "host", To: "red", Addr: a("10.0.0.2"), Kind: TCP, Port: 8080, Want: false},
			Got: false, Pass: true, Detail: "connection refused (host up, port closed)"},
		{Probe: Probe{Index: 4, From: "green", To: "red", Addr: a("10.0.0.2"), Kind: UDP, Port: 53, Want: true},
			Got: false, Pass: false, Detail: "no namespace green", Err: errors.New("no namespace green")},
		{Probe: Probe{Index: 9, From: "blue", To: "red", Addr: a("10.0.0.2"), Kind: UDP, Port: 5353, Want: true},
			Got: false, Pass: false, Detail: "no reply\n(udp cannot tell open from filtered)"},
	}
	got := Table(results)
	path := filepath.Join("testdata", "table.golden")
	testkit.Golden(t, path, []byte(got))
}

func TestTableEmpty(t *testing.T) {
	if got, want := Table(nil), "#  FROM  TO  CHECK  WANT  GOT  RESULT  DETAIL\n0 passed, 0 failed\n"; got != want {
		t.Errorf("Table(nil) = %q, want %q", got, want)
	}
}

// Probes that cannot run fail with Err set, need no root, and keep their
// order.
func TestRunRefuses(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	probes := []Probe{
		{Index: 0, From: "nlc-missing", To: "x", Addr: a, Kind: Ping, Want: false},
		{Index: 1, From: "host", To: "x", Addr: a, Kind: TCP, Port: 0},
		{Index: 2, From: "host", To: "x", Addr: a, Kind: "icmp"},
		{Index: 3, From: "host", To: "x", Kind: Ping},
		{Index: 4, From: "../etc", To: "x", Addr: a, Kind: Ping},
	}
	res := Run(context.Background(), probes, Options{})
	wantDetail := []string{"no namespace nlc-missing", "invalid port 0", `unknown probe kind "icmp"`, "no address", "no namespace ../etc"}
	for i, r := range res {
		if r.Index != i {
			t.Errorf("result %d has Index %d: order lost", i, r.Index)
		}
		if r.Pass || r.Err == nil || r.Got {
			t.Errorf("probe %d: Pass=%v Got=%v Err=%v, want a failure with Err", i, r.Pass, r.Got, r.Err)
		}
		if !strings.Contains(r.Detail, wantDetail[i]) {
			t.Errorf("probe %d: Detail %q does not mention %q", i, r.Detail, wantDetail[i])
		}
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Run(ctx, []Probe{{From: "host", To: "x", Addr: netip.MustParseAddr("10.0.0.1"), Kind: Ping}}, Options{})
	if len(res) != 1 || res[0].Pass || !errors.Is(res[0].Err, context.Canceled) {
		t.Errorf("canceled run: %+v, want a failure wrapping context.Canceled", res)
	}
}

func TestChecksum(t *testing.T) {
	// An echo request with its checksum filled in sums to zero.
	b := echo{id: 0x1234, seq: 7, payload: []byte("netlab!")}.marshal(false)
	if c := checksum(b); c != 0 {
		t.Errorf("checksum over a checksummed message = %#04x, want 0", c)
	}
	if b[0] != icmp4Echo || binary.BigEndian.Uint16(b[4:]) != 0x1234 || binary.BigEndian.Uint16(b[6:]) != 7 {
		t.Errorf("echo header = % x", b[:8])
	}
}

func TestParseReply(t *testing.T) {
	dst4 := netip.MustParseAddr("10.77.0.99")
	req4 := echo{id: 42, seq: 1, payload: []byte("x")}.marshal(false)
	// Host unreachable quoting our request: ICMP header, IPv4 header, 8 bytes.
	ip4 := make([]byte, 20)
	ip4[0], ip4[9] = 0x45, 1
	copy(ip4[12:], []byte{10, 77, 0, 1})
	copy(ip4[16:], dst4.AsSlice())
	unreach := append(append([]byte{icmp4Unreachable, 1, 0, 0, 0, 0, 0, 0}, ip4...), req4[:8]...)
	_, isReply, ierr, isErr := parseReply(unreach, false, dst4)
	if isReply || !isErr || ierr != (icmpError{id: 42, seq: 1, text: "host unreachable"}) {
		t.Errorf("v4 unreachable: isReply=%v isErr=%v %+v", isReply, isErr, ierr)
	}
	// The same error about another destination is not ours.
	if _, _, _, isErr := parseReply(unreach, false, netip.MustParseAddr("10.77.0.98")); isErr {
		t.Error("v4 unreachable for another destination matched")
	}

	rep := echo{id: 42, seq: 1, payload: []byte("hi")}.marshal(false)
	rep[0] = icmp4EchoReply
	r, isReply, _, isErr := parseReply(rep, false, dst4)
	if !isReply || isErr || r.id != 42 || r.seq != 1 || string(r.payload) != "hi" {
		t.Errorf("v4 reply: %+v isReply=%v", r, isReply)
	}

	dst6 := netip.MustParseAddr("fd00:77::99")
	req6 := echo{id: 7, seq: 0}.marshal(true)
	ip6 := make([]byte, 40)
	ip6[0], ip6[6] = 0x60, 58
	copy(ip6[24:], dst6.AsSlice())
	unreach6 := append(append([]byte{icmp6Unreachable, 3, 0, 0, 0, 0, 0, 0}, ip6...), req6[:8]...)
	if _, _, ierr, isErr := parseReply(unreach6, true, dst6); !isErr || ierr != (icmpError{id: 7, text: "address unreachable"}) {
		t.Errorf("v6 unreachable: isErr=%v %+v", isErr, ierr)
	}
	for _, b := range [][]byte{nil, {icmp4Unreachable, 1}, unreach[:20], {icmp4Echo, 0, 0, 0, 0, 0, 0, 0}} {
		if _, isReply, _, isErr := parseReply(b, false, dst4); isReply || isErr {
			t.Errorf("parseReply(% x) matched", b)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "timeout after 2s"},
		{os.ErrDeadlineExceeded, "timeout after 2s"},
	} {
		if got := describe(tc.err, 2*time.Second); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
