package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// long says whether the long variants run (make test-long): every crash
// point of every lab instead of a sample.
func long() bool { return os.Getenv("NETLAB_LONG") == "1" }

// shippedLab is a lab of labs/ as the reliability suites use it: a copy
// with its fixed host resources (UDP ports) made free, and the host prefixes
// it needs free.
type shippedLab struct {
	name, file string
	hostRoutes []string
}

func shippedLabs(t *testing.T) []shippedLab {
	t.Helper()
	dir := t.TempDir()
	free := func() int {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	udp := strings.NewReplacer("127.0.0.1:12346", fmt.Sprintf("127.0.0.1:%d", free()), "127.0.0.1:12345", fmt.Sprintf("127.0.0.1:%d", free()))
	// blue-red's bridge with system ports, as port-type auto gives a
	// bridge of more than 16: up adds them without waiting for
	// ovs-vswitchd to open them (a crash then leaves them half open).
	sys := strings.NewReplacer("name: blue-red\n", "name: blue-red-sys\n", "    type: ovs\n", "    type: ovs\n    port-type: system\n").Replace(readFile(t, "../labs/blue-red.yaml"))
	if !strings.Contains(sys, "name: blue-red-sys\n") || !strings.Contains(sys, "port-type: system") {
		t.Fatalf("blue-red.yaml changed: no system-port variant made of it:\n%s", sys)
	}
	return []shippedLab{
		{"blue-red", "../labs/blue-red.yaml", []string{"10.0.0.0/24", "fd00:10::/64"}},
		{"blue-red-sys", writeFile(t, dir, "blue-red-sys.yaml", sys), []string{"10.0.0.0/24", "fd00:10::/64"}},
		{"blue-red-lx", "../labs/blue-red-linux.yaml", []string{"10.0.1.0/24", "fd00:11::/64"}},
		{"learning-sw", "../labs/learning-switch.yaml", nil},
		{"nat", "../labs/nat.yaml", nil},
		{"tun-refl", "../labs/tun-reflector.yaml", nil},
		{"tun-udp", writeFile(t, dir, "tun-udp.yaml", udp.Replace(readFile(t, "../labs/tun-udp.yaml"))), nil},
		{"impaired", "../labs/impaired.yaml", []string{"10.7.0.0/24"}},
		// Emulated links: a crash before an emulator's pidfile, or between
		// its TAPs.
		{"emulated", "../labs/emulated.yaml", nil},
		// Services: a crash while FRR's daemons start, or between them.
		{"ospf", "../labs/ospf.yaml", nil},
		{"ovs-advanced", "../labs/ovs-advanced.yaml", nil},
		{"vlans", "../labs/vlans.yaml", nil},
	}
}

// crashPoints picks the steps to crash after: all of them in long mode,
// else the first three, the last two and a spread in between.
func crashPoints(steps int) []int {
	if long() {
		var all []int
		for k := 1; k < steps; k++ {
			all = append(all, k)
		}
		return all
	}
	set := map[int]bool{}
	for _, k := range []int{1, 2, 3, steps / 4, steps / 2, 3 * steps / 4, steps - 2, steps - 1} {
		if k >= 1 && k < steps {
			set[k] = true
		}
	}
	var out []int
	for k := range set {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// TestCrashAtEveryStep: for each shipped lab, netlab dies right after step K
// of up (NETLAB_CRASH_AFTER=K, as abrupt as kill -9). Then down leaves the
// host exactly as it was; and (for every other K) up after the crash
// converges and the lab's expectations pass.
func TestCrashAtEveryStep(t *testing.T) {
	requireRoot(t)
	for _, sl := range shippedLabs(t) {
		t.Run(sl.name, func(t *testing.T) {
			hostRoutesFree(t, sl.hostRoutes...)
			before := fingerprint(t)
			p := newPrefix(t)
			lab := p + sl.name
			t.Cleanup(func() { netlab(t, "down", lab) })
			plan := mustNetlab(t, "plan", "--prefix", p, sl.file)
			steps := 0
			for _, line := range strings.Split(plan, "\n") {
				// A multi-line action (a heredoc) is one step.
				if line != "" && !strings.HasPrefix(line, "add ") && !strings.HasPrefix(line, "delete ") && line != "EOF" {
					steps++
				}
			}
			tried, clean, converged := 0, 0, 0
			for i, k := range crashPoints(steps) {
				r := run(t, []string{fmt.Sprintf("NETLAB_CRASH_AFTER=%d", k)}, netlabBin, "up", "-q", "--prefix", p, sl.file)
				if r.code != 99 {
					t.Fatalf("crash after %d of %d: want exit 99, got %d\n%s", k, steps, r.code, r.out)
				}
				tried++
				if i%2 == 1 {
					if r := netlab(t, "up", "-q", "--prefix", p, sl.file); r.code != 0 {
						t.Errorf("up after a crash at step %d: exit %d\n%s", k, r.code, r.out)
					} else if c := netlab(t, "check", "--wait", "60s", lab); strings.Contains(readFile(t, sl.file), "expect:") && c.code != 0 {
						t.Errorf("expectations after a crash at step %d and up:\n%s", k, c.out)
					} else {
						converged++
					}
				}
				mustNetlab(t, "down", lab)
				if after := fingerprint(t); after == before {
					clean++
				} else {
					t.Errorf("crash after step %d of %d, then down: host changed:\n%s", k, steps, diff(before, after))
				}
			}
			t.Logf("%s: crash points: %d tried, %d clean after down, %d of %d converged after up", sl.name, tried, clean, converged, tried/2)
		})
	}
}

// TestBadInputCorpus: every broken file of the parser's corpus exits 2 from
// up, with file:line:col, without a panic, and changes nothing; so does a
// 10 MB file.
func TestBadInputCorpus(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	files, _ := filepath.Glob("../topology/testdata/bad/*.yaml")
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("name: big\n# "+strings.Repeat("x", 10<<20)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files = append(files, big)
	if len(files) < 41 {
		t.Fatalf("corpus has %d files, want at least 40 and the big one", len(files))
	}
	for _, f := range files {
		r := netlab(t, "up", "--prefix", newPrefix(t), f)
		if r.code != 2 || strings.Contains(r.out, "goroutine ") || !strings.Contains(r.out, filepath.Base(f)+":") {
			t.Errorf("%s: exit %d\n%s", f, r.code, r.out)
		}
	}
	t.Logf("bad input: %d files, all exit 2 with their place", len(files))
	sameHost(t, before)
}

// TestForeignObjectsNeverRemoved: objects with the lab's names but without
// its marker (a namespace, a host veth, a Linux bridge, an OVS bridge) make
// up refuse, naming each; down leaves them all; a host sysctl set by hand
// before up is what down restores.
func TestForeignObjectsNeverRemoved(t *testing.T) {
	requireRoot(t)
	p := newPrefix(t)
	// One OVS lab of ours keeps the private OVS up while the test puts a
	// foreign bridge in it.
	keeper := newPrefix(t)
	labUp(t, "testdata/pair.yaml", keeper, "pair")
	waitNoTentative(t)
	db := "--db=unix:/run/netlab/ovs/db.sock"
	sh(t, "ovs-vsctl", db, "add-br", p+"ovsbr0", "--", "set", "Bridge", p+"ovsbr0", "datapath_type=netdev")
	t.Cleanup(func() { run(t, nil, "ovs-vsctl", db, "--if-exists", "del-br", p+"ovsbr0") })
	sh(t, "ip", "netns", "add", p+"blue")
	t.Cleanup(func() { run(t, nil, "ip", "netns", "del", p+"blue") })
	sh(t, "ip", "link", "add", p+"veth2", "type", "veth", "peer", "name", p+"v2x")
	t.Cleanup(func() { run(t, nil, "ip", "link", "del", p+"veth2") })
	before := fingerprint(t)
	r := netlab(t, "up", "--prefix", p, "../labs/blue-red.yaml")
	for _, want := range []string{
		"namespace " + p + "blue already exists and is not netlab's",
		"interface " + p + "veth2 already exists in namespace host and is not netlab's",
		"bridge " + p + "ovsbr0 already exists and is not netlab's",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("up lacks %q (exit %d):\n%s", want, r.code, r.out)
		}
	}
	if r.code != 2 {
		t.Errorf("up over foreign objects: exit %d", r.code)
	}
	netlab(t, "down", p+"blue-red")
	sameHost(t, before)

	// A host sysctl changed by hand before up is restored to that value.
	old := strings.TrimSpace(readFile(t, "/proc/sys/net/ipv4/conf/all/log_martians"))
	t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv4/conf/all/log_martians", []byte(old), 0o644) })
	handSet := map[string]string{"0": "1", "1": "0"}[old]
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/log_martians", []byte(handSet), 0o644); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, t.TempDir(), "sys.yaml", "name: sys\nhost:\n  sysctls: {net.ipv4.conf.all.log_martians: "+old+"}\n")
	labUp(t, file, p, "sys")
	if got := strings.TrimSpace(readFile(t, "/proc/sys/net/ipv4/conf/all/log_martians")); got != old {
		t.Errorf("up did not set the file's value: %s", got)
	}
	mustNetlab(t, "down", p+"sys")
	if got := strings.TrimSpace(readFile(t, "/proc/sys/net/ipv4/conf/all/log_martians")); got != handSet {
		t.Errorf("down restored %s, want the value set by hand before up, %s", got, handSet)
	}
}

// TestEightLabsInParallel: 8 copies of one lab come up concurrently, carry
// traffic, and go down in random order without touching each other.
func TestEightLabsInParallel(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	seen := map[string]bool{}
	var prefixes []string
	for len(prefixes) < 8 {
		if p := newPrefix(t); !seen[p] {
			seen[p] = true
			prefixes = append(prefixes, p)
		}
	}
	var wg sync.WaitGroup
	results := make([]result, len(prefixes))
	start := time.Now()
	for i, p := range prefixes {
		t.Cleanup(func() { netlab(t, "down", p+"pair") })
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = netlab(t, "up", "-q", "--prefix", p, "testdata/pair.yaml")
		}()
	}
	wg.Wait()
	t.Logf("8 labs up concurrently in %v", time.Since(start).Round(time.Millisecond))
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("up %s: exit %d\n%s", prefixes[i], r.code, r.out)
		}
	}
	for _, p := range prefixes {
		ping(t, p+"a", "192.168.77.2")
		ping(t, p+"b", "192.168.78.1")
	}
	rand.Shuffle(len(prefixes), func(i, j int) { prefixes[i], prefixes[j] = prefixes[j], prefixes[i] })
	for i, p := range prefixes {
		mustNetlab(t, "down", p+"pair")
		for _, q := range prefixes[i+1:] {
			ping(t, q+"a", "192.168.77.2")
		}
	}
	sameHost(t, before)
}

// TestFaultsUnderRunningLab: OVS restarted, a namespace deleted by hand, a
// port removed from OVS by hand, the journal deleted: status reports the
// drift, up repairs, down still cleans everything.
func TestFaultsUnderRunningLab(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	file := "testdata/pair.yaml"
	labUp(t, file, p, "pair")
	lab := p + "pair"
	db := "--db=unix:/run/netlab/ovs/db.sock"
	repaired := func(what string) {
		t.Helper()
		st := mustNetlab(t, "status", lab)
		if strings.Contains(st, "drift: none") {
			t.Errorf("%s: status shows no drift:\n%s", what, st)
		}
		mustNetlab(t, "up", "-q", "--prefix", p, file)
		ping(t, p+"a", "192.168.77.2")
		ping(t, p+"a", "192.168.78.2")
		if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
			t.Errorf("%s: not converged after repair: %s", what, got)
		}
	}

	sh(t, "ip", "netns", "del", p+"b")
	repaired("namespace deleted by hand")

	sh(t, "ovs-vsctl", db, "del-port", p+"br", p+"pa")
	repaired("port removed from OVS by hand")

	// Restart the private OVS only when no other lab uses it: a user's lab
	// must not lose its switch because of a test.
	labs, _ := filepath.Glob("/run/netlab/labs/*")
	if len(labs) != 1 {
		t.Logf("skipping the OVS restart: other labs use the private OVS (%v)", labs)
	} else if pid := strings.TrimSpace(readFile(t, "/run/netlab/ovs/ovs-vswitchd.pid")); pid != "" {
		var n int
		fmt.Sscan(pid, &n)
		if n > 1 && strings.Contains(readFile(t, fmt.Sprintf("/proc/%d/cmdline", n)), "/run/netlab/ovs/db.sock") {
			syscall.Kill(n, syscall.SIGKILL)
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(alive([]int{n})) > 0; {
				time.Sleep(50 * time.Millisecond)
			}
			mustNetlab(t, "up", "-q", "--prefix", p, file)
			ping(t, p+"a", "192.168.77.2")
		}
	}

	if err := os.RemoveAll("/run/netlab/labs/" + lab); err != nil {
		t.Fatal(err)
	}
	if st := mustNetlab(t, "status"); !strings.Contains(st, "lab "+lab) {
		t.Errorf("status without the journal does not find the lab by its markers:\n%s", st)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	os.RemoveAll("/run/netlab/labs/" + lab)
	out := mustNetlab(t, "down", lab)
	if !strings.Contains(out, "removed namespace "+p+"a") {
		t.Errorf("down without a journal:\n%s", out)
	}
	sameHost(t, before)
}

// waitNoTentative waits until the host's IPv6 addresses have finished
// duplicate address detection: a fingerprint taken while a lab's host-side
// links are still "tentative" would differ from one taken a second later.
func waitNoTentative(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !strings.Contains(sh(t, "ip", "addr", "show"), "tentative") {
			return
		}
	}
}
