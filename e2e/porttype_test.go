package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const portTypeLab = `# two namespaces on a userspace OVS bridge
name: ptype
bridges:
  br0: {type: ovs%s}
namespaces:
  a:
    interfaces:
      e0: {peer: br0/pa, addresses: [10.0.77.1/24, fd00:77::1/64]%s}
  b:
    interfaces:
      e0: {peer: br0/pb, addresses: [10.0.77.2/24, fd00:77::2/64]%s}
`

func portTypeFile(t *testing.T, dir, bridge, mtu string) string {
	t.Helper()
	text := strings.Replace(portTypeLab, "%s", bridge, 1)
	text = strings.Replace(text, "%s", mtu, 1)
	text = strings.Replace(text, "%s", mtu, 1)
	return writeFile(t, dir, "ptype.yaml", text)
}

// portTypes reads each OVS port's type from `netlab status --json`, and
// fails the test if up fell back from AF_XDP on any.
func portTypes(t *testing.T, lab string) map[string]string {
	t.Helper()
	types, fallbacks := portTypesAndFallbacks(t, lab)
	for name, msg := range fallbacks {
		t.Errorf("port %s fell back from AF_XDP: %s", name, msg)
	}
	return types
}

// portTypesAndFallbacks reads each OVS port's type, and the AF_XDP error of
// those where up fell back to system, from `netlab status --json`.
func portTypesAndFallbacks(t *testing.T, lab string) (types, fallbacks map[string]string) {
	t.Helper()
	var st []struct {
		OVS struct {
			DB string `json:"db"`
		} `json:"ovs"`
		Bridges []struct {
			Ports []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				AFXDPError string `json:"afxdp_error"`
			} `json:"ports"`
		} `json:"bridges"`
	}
	if err := json.Unmarshal([]byte(mustNetlab(t, "status", lab, "--json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	types, fallbacks = map[string]string{"db": st[0].OVS.DB}, map[string]string{}
	for _, b := range st[0].Bridges {
		for _, p := range b.Ports {
			types[p.Name] = p.Type
			if p.AFXDPError != "" {
				fallbacks[p.Name] = p.AFXDPError
			}
		}
	}
	return types, fallbacks
}

// xdpAttached says whether the host interface has an XDP program (`ip link`
// prints "xdp" or "xdpgeneric" after the MTU).
func xdpAttached(t *testing.T, dev string) bool {
	t.Helper()
	f := strings.Fields(sh(t, "ip", "-o", "link", "show", dev))
	for i, w := range f {
		if w == "mtu" && i+2 < len(f) {
			return strings.HasPrefix(f[i+2], "xdp")
		}
	}
	return false
}

// TestPortTypes: OVS veth ports are AF_XDP (afxdp-nonpmd) by default where
// Open vSwitch and the kernel support it, and carry ping and TCP (IPv4 and
// IPv6) in both directions; port-type system and afxdp are applied to the
// running lab in place; an MTU above what AF_XDP carries makes auto use
// system ports, and jumbo frames then pass; down leaves the host as it was.
func TestPortTypes(t *testing.T) {
	requireRoot(t)
	hostRoutesFree(t, "10.0.77.0/24", "fd00:77::/64")
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	lab, a, b, pa, pb := p+"ptype", p+"a", p+"b", p+"pa", p+"pb"
	labUp(t, portTypeFile(t, dir, "", ""), p, "ptype")

	types := portTypes(t, lab)
	out, err := exec.Command("ovs-vsctl", "--db="+types["db"], "get", "Open_vSwitch", ".", "iface_types").CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-vsctl get iface_types: %v\n%s", err, out)
	}
	// AF_XDP needs both: Open vSwitch built with it, and a kernel with
	// AF_XDP sockets.
	want := "system"
	if fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		if strings.Contains(string(out), "afxdp-nonpmd") {
			want = "afxdp-nonpmd"
		}
	}
	t.Logf("Open vSwitch iface_types %s; default port type %s", strings.TrimSpace(string(out)), want)
	if types[pa] != want || types[pb] != want {
		t.Fatalf("port types %v, want %s", types, want)
	}
	if want == "afxdp-nonpmd" && (!xdpAttached(t, pa) || !xdpAttached(t, pb)) {
		t.Errorf("AF_XDP ports without an XDP program:\n%s", sh(t, "ip", "link", "show", pa))
	}
	traffic := func(t *testing.T) {
		ping(t, a, "10.0.77.2")
		ping(t, b, "fd00:77::1")
		tcp(t, b, a, "10.0.77.2")
		tcp(t, a, b, "fd00:77::1")
	}
	t.Run("auto", traffic)

	for _, tc := range []struct{ bridge, want string }{
		{", port-type: system", "system"},
		{", port-type: afxdp", "afxdp"},
		{"", want},
	} {
		t.Run(tc.want, func(t *testing.T) {
			file := portTypeFile(t, dir, tc.bridge, "")
			if got := mustNetlab(t, "plan", "--prefix", p, file); tc.want != types[pa] && !strings.Contains(got, "set Interface "+pa+" type="+tc.want) {
				t.Errorf("plan:\n%s", got)
			}
			mustNetlab(t, "up", "-q", "--prefix", p, file)
			types = portTypes(t, lab)
			if types[pa] != tc.want || types[pb] != tc.want {
				t.Fatalf("port types %v, want %s", types, tc.want)
			}
			if xdpAttached(t, pa) != (tc.want != "system") {
				t.Errorf("%s: XDP program attached = %v:\n%s", tc.want, xdpAttached(t, pa), sh(t, "ip", "link", "show", pa))
			}
			if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
				t.Errorf("second up: %s", got)
			}
			traffic(t)
		})
	}

	t.Run("jumbo frames use system ports", func(t *testing.T) {
		file := portTypeFile(t, dir, "", ", mtu: 9000")
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		if types = portTypes(t, lab); types[pa] != "system" || types[pb] != "system" {
			t.Fatalf("port types %v with MTU 9000, want system", types)
		}
		if r := inNS(t, a, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "8900", "10.0.77.2"); r.code != 0 {
			t.Errorf("8900-byte ping without fragmentation failed:\n%s", r.out)
		}
		if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("second up: %s", got)
		}
	})

	t.Run("back to auto after jumbo frames", func(t *testing.T) {
		// The file no longer sets an MTU, so the interfaces keep 9000,
		// which AF_XDP cannot carry: auto keeps system ports.
		file := portTypeFile(t, dir, "", "")
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		if types = portTypes(t, lab); types[pa] != "system" {
			t.Errorf("port types %v with MTU 9000 left on the interfaces, want system", types)
		}
		if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("second up: %s", got)
		}
	})

	mustNetlab(t, "down", lab)
	if want == "afxdp-nonpmd" {
		t.Run("fallback to system when Open vSwitch cannot open AF_XDP", func(t *testing.T) {
			file := portTypeFile(t, dir, "", "")
			// An XDP mode Open vSwitch rejects: it fails to open every
			// AF_XDP port ("could not set configuration").
			r := run(t, []string{"NETLAB_TEST_XDP_MODE=bogus"}, netlabBin, "up", "-q", "--prefix", p, file)
			t.Cleanup(func() { netlab(t, "down", lab) })
			if r.code != 0 || !strings.Contains(r.out, "netlab: warning: Open vSwitch could not open "+pa+", "+pb+" of bridge "+p+"br0 as AF_XDP ports") {
				t.Fatalf("up with AF_XDP failing: exit %d\n%s", r.code, r.out)
			}
			types, fallbacks := portTypesAndFallbacks(t, lab)
			if types[pa] != "system" || types[pb] != "system" || !strings.Contains(fallbacks[pa], "could not set configuration") {
				t.Errorf("types %v, fallbacks %v", types, fallbacks)
			}
			if st := mustNetlab(t, "status", lab); !strings.Contains(st, pa+"(1, system, AF_XDP failed)") {
				t.Errorf("status:\n%s", st)
			}
			traffic(t)
			// The journal remembers: the next up does not try AF_XDP again.
			if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
				t.Errorf("up after the fallback: %s", got)
			}
			mustNetlab(t, "down", lab)
		})
	}
	sameHost(t, before)
}
