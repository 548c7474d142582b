package topology

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestBad parses every file of the bad corpus and compares the complete
// error text with its golden file, so a message change is a reviewed diff.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("bad corpus has %d files, want at least 30", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			lab, err := Load(file)
			if err == nil {
				t.Fatalf("parsed without error: %+v", lab)
			}
			if lab != nil {
				t.Errorf("lab is not nil on error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			var one *Error
			if !errors.As(err, &one) || one != list[0] {
				t.Errorf("errors.As(*Error) does not find the first error")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			testkit.Golden(t, golden, []byte(got))
		})
	}
}

// TestErrorsSorted checks the contract of ErrorList: one error per line, in
// file order.
func TestErrorsSorted(t *testing.T) {
	_, err := Load("testdata/bad/many-errors.yaml")
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %v, want ErrorList", err)
	}
	if len(list) < 4 {
		t.Fatalf("got %d errors, want every problem of the file:\n%v", len(list), err)
	}
	for i := 1; i < len(list); i++ {
		a, b := list[i-1].Pos, list[i].Pos
		if a.Line > b.Line || a.Line == b.Line && a.Col > b.Col {
			t.Errorf("errors out of order: %v before %v", list[i-1], list[i])
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(list) {
		t.Errorf("Error() has %d lines for %d errors", n, len(list))
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{"labs/x.yaml", Pos{12, 20}, "namespaces.blue.interfaces.veth1.addresses[0]", `invalid CIDR "10.0.0.1/33"`},
			`labs/x.yaml:12:20: namespaces.blue.interfaces.veth1.addresses[0]: invalid CIDR "10.0.0.1/33"`},
		{Error{"x.yaml", Pos{3, 0}, "", "YAML syntax: oops"}, "x.yaml:3: YAML syntax: oops"},
		{Error{"x.yaml", Pos{}, "", "empty file"}, "x.yaml: empty file"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func mustLoad(t *testing.T, path string) *Lab {
	t.Helper()
	lab, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return lab
}

// TestGood parses every valid example and checks the invariants every
// parsed lab keeps.
func TestGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			checkInvariants(t, mustLoad(t, file))
		})
	}
}

// TestLabs keeps the shipped topologies valid.
func TestLabs(t *testing.T) {
	files, err := filepath.Glob("../labs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no labs: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			checkInvariants(t, mustLoad(t, file))
		})
	}
}

func end(ns, name, bridge string) End { return End{NS: ns, Name: name, Bridge: bridge} }

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestBlueRed(t *testing.T) {
	lab := mustLoad(t, "testdata/good/blue-red.yaml")
	if lab.Name != "blue-red" || lab.Pos != (Pos{2, 1}) || lab.File != "testdata/good/blue-red.yaml" {
		t.Errorf("lab %q at %v in %q", lab.Name, lab.Pos, lab.File)
	}

	if len(lab.Bridges) != 1 {
		t.Fatalf("bridges: %+v", lab.Bridges)
	}
	br := lab.Bridge("ovsbr0")
	if br == nil || br.Type != BridgeOVS || br.FailMode != FailStandalone || br.Datapath != DatapathAuto || br.Pos != (Pos{6, 3}) {
		t.Fatalf("bridge: %+v", br)
	}
	if !slices.Equal(br.Addresses, prefixes("10.0.0.254/24", "fd00:10::fe/64")) {
		t.Errorf("bridge addresses %v", br.Addresses)
	}
	wantPorts := []Port{
		{Name: "veth0", OFPort: 1, Peer: end("blue", "veth1", ""), Pos: Pos{13, 21}},
		{Name: "veth2", OFPort: 2, Peer: end("red", "veth3", ""), Pos: Pos{19, 21}},
	}
	if len(br.Ports) != len(wantPorts) {
		t.Fatalf("ports: %+v", br.Ports)
	}
	for i, p := range br.Ports {
		if *p != wantPorts[i] {
			t.Errorf("port %d: got %+v, want %+v", i, *p, wantPorts[i])
		}
	}

	if len(lab.Links) != 2 {
		t.Fatalf("links: %+v", lab.Links)
	}
	l := lab.Links[0]
	if l.A.End != end("blue", "veth1", "") || l.B.End != end(Host, "veth0", "ovsbr0") {
		t.Errorf("link 0: %v -- %v", l.A.End, l.B.End)
	}
	if !slices.Equal(l.A.Addresses, prefixes("10.0.0.1/24", "fd00:10::1/64")) || l.B.Addresses != nil || l.A.Pos != (Pos{13, 7}) {
		t.Errorf("link 0 ends: %+v", l)
	}
	if l := lab.Links[1]; l.A.End != end("red", "veth3", "") || l.B.End != end(Host, "veth2", "ovsbr0") {
		t.Errorf("link 1: %v -- %v", l.A.End, l.B.End)
	}

	blue := lab.Namespace("blue")
	if blue == nil || blue.Pos != (Pos{11, 3}) || len(blue.Interfaces) != 1 {
		t.Fatalf("blue: %+v", blue)
	}
	if i := blue.Interfaces[0]; i.NS != "blue" || i.Peer != end(Host, "veth0", "ovsbr0") || i.MAC != nil || i.MTU != 0 {
		t.Errorf("blue/veth1: %+v", i)
	}
	var routes []string
	for _, r := range blue.Routes {
		routes = append(routes, r.String()+"@"+strconv.Itoa(r.Pos.Line))
	}
	if want := []string{"default via 10.0.0.254@15", "default via fd00:10::fe@16"}; !slices.Equal(routes, want) {
		t.Errorf("blue routes %q, want %q", routes, want)
	}
	if r := blue.Routes[1]; r.To != netip.MustParsePrefix("::/0") {
		t.Errorf("IPv6 default is %v", r.To)
	}

	if lab.Host == nil || lab.Namespace(Host) != lab.Host || !lab.Host.IsHost() {
		t.Fatalf("host: %+v", lab.Host)
	}
	if got := lab.Host.EffectiveSysctls(); !slices.Equal(got, []Sysctl{{"net.ipv4.ip_forward", "1", Pos{4, 13}}}) {
		t.Errorf("host sysctls %+v", got)
	}
	var names []string
	for _, n := range lab.AllNamespaces() {
		names = append(names, n.Name)
	}
	if want := []string{Host, "blue", "red"}; !slices.Equal(names, want) {
		t.Errorf("AllNamespaces %q, want %q", names, want)
	}
	if lab.Namespace("green") != nil || lab.Bridge("br9") != nil {
		t.Errorf("lookup of unknown names returns non-nil")
	}
}

func TestFull(t *testing.T) {
	lab := mustLoad(t, "testdata/good/full.yaml")
	ofports := map[string]int{}
	for _, b := range lab.Bridges {
		for _, p := range b.Ports {
			ofports[b.Name+"/"+p.Name] = p.OFPort
		}
	}
	// veth0 and veth2 are requested; veth5 gets the lowest free number.
	want := map[string]int{"ovsbr0/veth0": 7, "ovsbr0/veth2": 1, "ovsbr0/veth5": 2, "lbr0/lp1": 0}
	if len(ofports) != len(want) {
		t.Errorf("ports %v, want %v", ofports, want)
	}
	for k, v := range want {
		if ofports[k] != v {
			t.Errorf("ofport of %s = %d, want %d", k, ofports[k], v)
		}
	}
	ovs, lbr := lab.Bridge("ovsbr0"), lab.Bridge("lbr0")
	if ovs.FailMode != FailSecure || ovs.Datapath != DatapathNetdev || ovs.MTU != 1500 {
		t.Errorf("ovsbr0: %+v", ovs)
	}
	if lbr.Type != BridgeLinux || lbr.FailMode != "" || lbr.Datapath != "" {
		t.Errorf("lbr0: %+v", lbr)
	}

	var links []string
	for _, l := range lab.Links {
		links = append(links, l.A.End.String()+" -- "+l.B.End.String())
	}
	wantLinks := []string{
		"blue/veth1 -- ovsbr0/veth0",
		"blue/bl1 -- host/vh1",
		"blue/b2r -- red/r2b",
		"red/veth3 -- ovsbr0/veth2",
		"red/rl -- lbr0/lp1",
		"green/gh -- host/gh0",
		"green/vg -- ovsbr0/veth5",
	}
	if !slices.Equal(links, wantLinks) {
		t.Errorf("links\n%q\nwant\n%q", links, wantLinks)
	}
	// Both ends described: B carries the other side's configuration.
	if l := lab.Links[1]; !slices.Equal(l.B.Addresses, prefixes("10.1.0.254/24")) || l.B.MTU != 9000 {
		t.Errorf("host end of blue/bl1: %+v", l.B)
	}
	if l := lab.Links[2]; !slices.Equal(l.B.Addresses, prefixes("10.2.0.2/24")) {
		t.Errorf("red end of blue/b2r: %+v", l.B)
	}
	if l := lab.Links[0]; l.A.MAC.String() != "02:00:00:00:00:01" || l.A.MTU != 1500 {
		t.Errorf("blue/veth1 end: %+v", l.A)
	}
	// An interface without peer gets the end that named it.
	red := lab.Namespace("red")
	if p := red.Interfaces[1].Peer; p != end("blue", "b2r", "") {
		t.Errorf("red/r2b peer %v", p)
	}
	if p := lab.Host.Interfaces[0].Peer; p != end("blue", "bl1", "") || lab.Host.Interfaces[0].NS != Host {
		t.Errorf("host/vh1 peer %v", p)
	}

	blue := lab.Namespace("blue")
	var keys []string
	for _, s := range blue.EffectiveSysctls() {
		keys = append(keys, s.Key+"="+s.Value)
	}
	wantSysctls := []string{
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.core.somaxconn=4096",
	}
	if !slices.Equal(keys, wantSysctls) {
		t.Errorf("blue sysctls\n%q\nwant\n%q", keys, wantSysctls)
	}
	if got := lab.Namespace("empty").EffectiveSysctls(); !slices.Equal(got, DefaultSysctls()) {
		t.Errorf("empty namespace sysctls %+v", got)
	}
	var routes []string
	for _, r := range blue.Routes {
		routes = append(routes, r.String())
	}
	wantRoutes := []string{"default via 10.0.0.254", "10.9.0.0/16 dev veth1 metric 10", "fd00:20::/64 via fd00:10::fe", "fd00:30::/64 via fe80::1 dev veth1"}
	if !slices.Equal(routes, wantRoutes) {
		t.Errorf("routes %q, want %q", routes, wantRoutes)
	}
}

func TestHostOmittedWhenEmpty(t *testing.T) {
	lab, err := Parse("mem.yaml", []byte("name: solo\nnamespaces:\n  a:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if lab.Host == nil || lab.Host.Name != Host {
		t.Fatalf("Host is %+v, want an empty host namespace", lab.Host)
	}
	if all := lab.AllNamespaces(); len(all) != 1 || all[0].Name != "a" {
		t.Errorf("AllNamespaces = %+v", all)
	}
	if got := lab.Host.EffectiveSysctls(); len(got) != 0 {
		t.Errorf("host sysctls %+v, want none", got)
	}
}

func TestTooLarge(t *testing.T) {
	data := make([]byte, MaxFileSize+1)
	_, err := Parse("big.yaml", data)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Msg, "larger than") {
		t.Errorf("got %v", err)
	}
	if _, err := Load("testdata/does-not-exist.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// A FIFO, a directory or a device given as the file is refused at once:
// reading a FIFO would wait for a writer for ever.
func TestLoadOnlyRegularFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "lab.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Load(fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is not a regular file (a FIFO)") {
			t.Errorf("Load of a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load of a FIFO hangs")
	}
	for path, kind := range map[string]string{t.TempDir(): "a directory", "/dev/null": "a device"} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), kind) {
			t.Errorf("Load(%s): %v, want %s refused", path, err, kind)
		}
	}
}

// checkInvariants holds for every successfully parsed lab; the fuzz test
// relies on it too.
func checkInvariants(t *testing.T, lab *Lab) {
	t.Helper()
	if lab == nil || lab.Host == nil || lab.Host.Name != Host {
		t.Fatalf("lab or host missing: %+v", lab)
	}
	checkTimelineInvariants(t, lab)
	if checkLabName(lab.Name) != "" {
		t.Errorf("invalid lab name %q accepted", lab.Name)
	}
	ends := map[End]bool{}
	for _, l := range lab.Links {
		for _, e := range []End{l.A.End, l.B.End} {
			k := End{NS: e.NS, Name: e.Name}
			if ends[k] {
				t.Errorf("end %v is in two links", e)
			}
			ends[k] = true
			if lab.Namespace(e.NS) == nil {
				t.Errorf("link end %v in unknown namespace", e)
			}
		}
		if l.A.Bridge != "" {
			t.Errorf("link A end %v is a bridge port", l.A.End)
		}
	}
	for _, n := range lab.AllNamespaces() {
		for _, i := range n.Interfaces {
			if i.NS != n.Name || i.Peer.Name == "" {
				t.Errorf("interface %s/%s: NS %q, peer %v", n.Name, i.Name, i.NS, i.Peer)
			}
			if !ends[End{NS: n.Name, Name: i.Name}] {
				t.Errorf("interface %s/%s is in no link", n.Name, i.Name)
			}
		}
		for _, r := range n.Routes {
			if !r.To.IsValid() || r.To != r.To.Masked() {
				t.Errorf("route %v in %s: bad destination", r, n.Name)
			}
		}
	}
	for _, b := range lab.Bridges {
		seen := map[int]bool{}
		for _, p := range b.Ports {
			if b.Type == BridgeOVS && (p.OFPort < minOFPort || p.OFPort > maxOFPort || seen[p.OFPort]) {
				t.Errorf("port %s/%s: ofport %d", b.Name, p.Name, p.OFPort)
			}
			if b.Type == BridgeLinux && p.OFPort != 0 {
				t.Errorf("linux bridge port %s/%s has ofport %d", b.Name, p.Name, p.OFPort)
			}
			seen[p.OFPort] = true
		}
	}
}

// FuzzParse feeds the parser arbitrary bytes: it must never panic, must
// return either a lab or an ErrorList, and a lab it accepts must keep the
// invariants.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "../labs/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lab, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || lab != nil {
				t.Fatalf("error %T %v with lab %v", err, err, lab)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("malformed error %+v", e)
				}
			}
			return
		}
		checkInvariants(t, lab)
	})
}

// A Linux bridge with more ports than the kernel gives one is refused at
// the first port too many, before up makes the ports before it.
func TestLinuxBridgePortLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: big\nbridges:\n  br0: {type: linux}\nnamespaces:\n")
	for i := range MaxLinuxBridgePorts + 1 {
		fmt.Fprintf(&b, "  n%d:\n    interfaces:\n      e0: {peer: br0/p%d}\n", i, i)
	}
	_, err := Parse("big.yaml", []byte(b.String()))
	want := fmt.Sprintf("big.yaml:%d:18: bridges.br0: 1024 ports: a Linux bridge has at most 1023", 4+3*MaxLinuxBridgePorts+3)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
	// One fewer is a lab the kernel can make.
	text := strings.Replace(b.String(), fmt.Sprintf("  n%d:\n    interfaces:\n      e0: {peer: br0/p%d}\n", MaxLinuxBridgePorts, MaxLinuxBridgePorts), "", 1)
	if _, err := Parse("big.yaml", []byte(text)); err != nil {
		t.Errorf("%d ports refused: %v", MaxLinuxBridgePorts, err)
	}
}

// TestAnchors: a lab written with anchors, aliases, merge keys and an x-
// key to hold them is the lab written out (their files format the same),
// its own keys winning over merged ones.
func TestAnchors(t *testing.T) {
	with, written := mustLoad(t, "testdata/anchors/with.yaml"), mustLoad(t, "testdata/anchors/written.yaml")
	a, err := Format(with)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Format(written)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("with anchors:\n%s\nwritten out:\n%s", a, b)
	}
	if got := with.Namespace("r2").Sysctls; len(got) != 1 || got[0].Value != "0" {
		t.Errorf("r2's own sysctls lost to the merged ones: %+v", got)
	}
}

// TestManyValuesNoAliases: a lab written out, with no alias, is bounded by
// the file's size, not by the alias bomb's bound: 10,000 namespaces with
// their routes are more values than maxExpanded (once refused as "an alias
// bomb?"), and parse.
func TestManyValuesNoAliases(t *testing.T) {
	const n = 10_000
	var b strings.Builder
	b.WriteString("name: big\nbridges:\n  sw: {type: ovs}\nnamespaces:\n")
	for i := range n {
		fmt.Fprintf(&b, "  h%05d:\n    interfaces:\n      eth0: {peer: sw/p%05d, addresses: [10.%d.%d.2/8, fd00::%x/64]}\n", i, i, i/250, i%250, i+2)
		b.WriteString("    routes:\n      - {to: 198.51.100.0/24, via: 10.0.0.1}\n      - {to: 2001:db8::/32, via: fd00::1}\n")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	if got := countValues(&doc); got <= maxExpanded {
		t.Fatalf("the lab has %d values, not more than maxExpanded (%d): the test proves nothing", got, maxExpanded)
	}
	lab, err := Parse("big.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(lab.Namespaces) != n {
		t.Errorf("%d namespaces, want %d", len(lab.Namespaces), n)
	}
}

func countValues(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countValues(k)
	}
	return c
}

// simpleName is the regular expressions it replaced, on every string of
// up to 4 bytes over a-z, 0-9, -, another byte, and on names around the
// bounds.
func TestSimpleNameAsRegexp(t *testing.T) {
	alphabet := []byte{'a', 'z', '0', '9', '-', 'A', '_', '.', 0xc3}
	var inputs []string
	var grow func(s string)
	grow = func(s string) {
		inputs = append(inputs, s)
		if len(s) < 4 {
			for _, c := range alphabet {
				grow(s + string(c))
			}
		}
	}
	grow("")
	for _, n := range []int{5, 6, 7, 31, 32, 33} {
		inputs = append(inputs, strings.Repeat("a", n), "-"+strings.Repeat("a", n-1), strings.Repeat("a", n-1)+"-")
	}
	for _, tc := range []struct {
		max int
		re  *regexp.Regexp
	}{
		{6, regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,5}$`)},
		{32, regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)},
		{0, regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)},
	} {
		for _, s := range inputs {
			if got, want := simpleName(s, tc.max), tc.re.MatchString(s); got != want {
				t.Errorf("simpleName(%q, %d) = %v, the expression says %v", s, tc.max, got, want)
			}
		}
	}
}
