package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------
// Sandboxes: what a lab costs in a sandbox of root's and in a
// rootless one (uid 65534), against the same lab on the machine, in one run.

// userTun gives the rootless runs a 0666 /dev/net/tun of their own, as a
// stock Debian machine has (this one's is 0600), in a private mount
// namespace; the machine's device is never changed.
const userTun = `d=$(mktemp -d) && mount -t tmpfs -o mode=0755 netlab-bench-tun "$d" && mknod -m 0666 "$d/tun" c 10 200 && ` +
	`mount --bind "$d/tun" /dev/net/tun && umount -l "$d" && rmdir "$d" && exec "$@"`

// place is where a lab of the sandbox section runs.
type place struct {
	name    string
	sandbox string // "" on the machine
	user    bool   // as uid 65534, in that user's sandbox
}

// argv is the command line of `netlab ARGS` there.
func (c *config) argv(p place, bin string, args ...string) []string {
	if p.sandbox != "" {
		args = append([]string{"--sandbox", p.sandbox}, args...)
	}
	if !p.user {
		return append([]string{bin}, args...)
	}
	user := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--",
		"env", "-u", "XDG_RUNTIME_DIR", "HOME=/", bin}
	return append(append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", userTun, "sh"}, user...), args...)
}

// userFiles copies the netlab binary and the labs where uid 65534 may read
// them: the bench's temporary directory, opened to everyone.
func (c *config) userFiles() (bin string, labs string, err error) {
	dir := filepath.Join(c.tmp, "user")
	if err := os.Chmod(c.tmp, 0o755); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	b, err := os.ReadFile(c.netlab)
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "netlab")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		return "", "", err
	}
	for _, name := range []string{"blue-red.yaml", "blue-red-linux.yaml"} {
		b, err := os.ReadFile(filepath.Join(c.root, "labs", name))
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", "", err
		}
	}
	// blue-red with the system ports a rootless sandbox gets: the machine's
	// like-for-like figure.
	b, err = os.ReadFile(filepath.Join(dir, "blue-red.yaml"))
	if err != nil {
		return "", "", err
	}
	system := strings.Replace(string(b), "    fail-mode: secure", "    fail-mode: secure\n    port-type: system", 1)
	if system == string(b) {
		return "", "", errors.New("labs/blue-red.yaml: no fail-mode line to add port-type after")
	}
	return bin, dir, os.WriteFile(filepath.Join(dir, "blue-red-system.yaml"), []byte(system), 0o644)
}

func (c *config) sandboxSection(w io.Writer) error {
	bin, labs, err := c.userFiles()
	if err != nil {
		return fmt.Errorf("sandbox section: %w", err)
	}
	fmt.Fprintf(w, "\n## Sandboxes\n\n")
	if out, _ := exec.Command("ip", "route", "show", "10.0.0.0/24").Output(); len(bytes.TrimSpace(out)) > 0 {
		fmt.Fprintf(w, "Skipped: the machine already routes 10.0.0.0/24 (a blue-red lab of a user's is up), which the machine's copy of blue-red would disturb.\n")
		return nil
	}
	if db := ovsDB(); db != "" {
		fmt.Fprintf(w, "An Open vSwitch already runs on the machine (%s): the machine's figures do not include starting one, the sandboxes' do (each starts its own).\n\n", db)
	}
	machine := place{name: "machine"}
	root := place{name: "root's sandbox", sandbox: "bench"}
	rootless := place{name: "rootless sandbox (uid 65534)", user: true}
	places := []place{machine, root, rootless}

	// Up of blue-red: from nothing (no sandbox, no Open vSwitch) to a lab
	// whose expectations hold.
	fmt.Fprintf(w, "`netlab up labs/blue-red.yaml` from nothing: on the machine netlab starts its private Open vSwitch; in a sandbox it also makes the sandbox (its keeper, namespaces and mounts) and the sandbox's own Open vSwitch. Seconds, medians of %d runs; down (which removes the sandbox with its last lab) is not timed here.\n\n", c.runs)
	fmt.Fprintf(w, "| where | up | ÷ machine | runs |\n|---|---:|---:|---|\n")
	ups := map[string][]float64{}
	for run := 0; run < c.runs; run++ {
		for _, p := range places {
			pre := newPrefix()
			file := filepath.Join(labs, "blue-red.yaml")
			up := c.argv(p, bin, "up", "-q", "--prefix", pre, file)
			d, _, err := c.timed(nil, up[0], up[1:]...)
			down := c.argv(p, bin, "down", "-q", pre+"blue-red")
			if _, _, derr := c.timed(nil, down[0], down[1:]...); derr != nil && err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("blue-red in %s: %w", p.name, err)
			}
			if p == machine {
				if _, err := waitClean(pre, 10*time.Second); err != nil {
					return err
				}
			}
			ups[p.name] = append(ups[p.name], d)
		}
	}
	for _, p := range places {
		fmt.Fprintf(w, "| %s | %.3f | %.2f× | %s |\n", p.name, median(ups[p.name]), median(ups[p.name])/median(ups[machine.name]), list(ups[p.name]))
	}

	// TCP through the lab's bridge, blue -> red. The lab is up in every
	// place at once (one file, the same names: what sandboxes are for), and
	// each run measures every place in turn, so the machine's
	// minute-to-minute swings (20-40 % on this VM) fall on all of them; the
	// ratio is the median of each run's.
	fmt.Fprintf(w, "\nTCP blue → red (iperf3 -t %g, one stream), Gb/s: the same file up on the machine and in the sandboxes at once, %d runs each measuring every place in turn; `÷ machine` is the median of the runs' ratios. A rootless sandbox has system (AF_PACKET) ports (no XDP program in a user namespace): its like-for-like figure is against `port-type: system` on the machine.\n\n", c.iperf.Seconds(), c.runs)
	fmt.Fprintf(w, "| lab | where | Gb/s | ÷ machine | runs |\n|---|---|---:|---:|---|\n")
	cases := []struct{ lab, file, name string }{
		{"blue-red", "blue-red.yaml", "OVS learning switch, default ports"},
		{"blue-red", "blue-red-system.yaml", "OVS learning switch, system ports"},
		{"blue-red-lx", "blue-red-linux.yaml", "Linux bridge"},
	}
	for _, tc := range cases {
		var where []place
		for _, p := range places {
			// A rootless sandbox gets the system ports of the next case.
			if !(p.user && tc.file == "blue-red.yaml") {
				where = append(where, p)
			}
		}
		pre := newPrefix()
		var err error
		for _, p := range where {
			up := c.argv(p, bin, "up", "-q", "--prefix", pre, filepath.Join(labs, tc.file))
			if _, _, err = c.timed(nil, up[0], up[1:]...); err != nil {
				break
			}
		}
		runs := map[string][]float64{}
		ratios := map[string][]float64{}
		for run := 0; run < c.runs && err == nil; run++ {
			var base, gbps float64
			for _, p := range where {
				if gbps, err = c.sandboxTCP(p, bin, pre+tc.lab); err != nil {
					err = fmt.Errorf("TCP in %s, %s: %w", p.name, tc.name, err)
					break
				}
				if p == machine {
					base = gbps
				}
				runs[p.name] = append(runs[p.name], gbps)
				ratios[p.name] = append(ratios[p.name], gbps/base)
			}
		}
		for _, p := range where {
			down := c.argv(p, bin, "down", "-q", pre+tc.lab)
			if _, _, derr := c.timed(nil, down[0], down[1:]...); derr != nil && err == nil {
				err = derr
			}
		}
		if err != nil {
			return err
		}
		for _, p := range where {
			fmt.Fprintf(w, "| %s | %s | %.2f | %.2f× | %s |\n", tc.name, p.name, median(runs[p.name]), median(ratios[p.name]), list(runs[p.name]))
		}
	}

	// A rootless 100-namespace star against the hand-batched script on the
	// machine (which needs an Open vSwitch running: the keeper lab).
	keeper, err := c.startKeeper()
	if err != nil {
		return err
	}
	defer c.down(keeper)
	fmt.Fprintf(w, "\nA 100-namespace star up: netlab as uid 65534 in a new rootless sandbox (making the sandbox and, on OVS, starting its Open vSwitch) against bench/batched.sh on the machine (with an Open vSwitch already running). Seconds, medians of %d runs.\n\n", c.runs)
	fmt.Fprintf(w, "| bridge | rootless netlab up | batched script up (machine) | ÷ batched | runs (netlab) |\n|---|---:|---:|---:|---|\n")
	for _, br := range c.bridges {
		file := filepath.Join(labs, "star-"+br+"-100.yaml")
		args := []string{"-n", "100", "-bridge", br, "-o", file}
		if br == "ovs" {
			args = append(args, "-port-type", "system")
		}
		if b, err := exec.Command(c.star, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("star: %v: %s", err, b)
		}
		if err := os.Chmod(file, 0o644); err != nil {
			return err
		}
		var nl, sh []float64
		for run := 0; run < c.runs; run++ {
			pre := newPrefix()
			up := c.argv(rootless, bin, "up", "-q", "--prefix", pre, file)
			d, _, err := c.timed(nil, up[0], up[1:]...)
			down := c.argv(rootless, bin, "down", "-q", "--all")
			if _, _, derr := c.timed(nil, down[0], down[1:]...); derr != nil && err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("rootless star: %w", err)
			}
			nl = append(nl, d)
			l := &lab{prefix: newPrefix(), file: file, bridge: br, n: 100, tool: toolBatched}
			d, _, err = c.up(l)
			if err != nil {
				c.cleanup(l)
				return err
			}
			if err := c.down(l); err != nil {
				return err
			}
			sh = append(sh, d)
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %.2f× | %s |\n", br, median(nl), median(sh), median(nl)/median(sh), list(nl))
	}
	return nil
}

// sandboxTCP measures TCP blue -> red (10.0.0.2, or 10.0.1.2 on
// blue-red-lx) in the lab, up in p, with iperf3 run through `netlab exec`.
func (c *config) sandboxTCP(p place, bin, lab string) (float64, error) {
	dst := "10.0.0.2"
	if strings.HasSuffix(lab, "blue-red-lx") {
		dst = "10.0.1.2"
	}
	inNS := func(ns string, args ...string) []string {
		return c.argv(p, bin, append([]string{"exec", lab, ns, "--"}, args...)...)
	}
	srv := inNS("red", "iperf3", "-s", "-1", "-D", "-B", dst)
	if out, err := exec.Command(srv[0], srv[1:]...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("iperf3 server: %v: %s", err, out)
	}
	return c.iperfClient(inNS("blue", "iperf3", "-c", dst, "-t", fmt.Sprint(c.iperf.Seconds()), "-J", "--connect-timeout", "1000"))
}

// iperfClient runs an iperf3 client command line (-J) until the server
// listens, and returns the receiver's Gb/s.
func (c *config) iperfClient(cli []string) (float64, error) {
	var out []byte
	var err error
	for try := 0; try < 50; try++ {
		if out, err = exec.Command(cli[0], cli[1:]...).Output(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || res.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3: %v %v %s: %s", err, jerr, res.Error, out)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// ---------------------------------------------------------------------------
// Labs over two machines, with root's sandboxes as the machines,
// joined by a veth underlay: against the same lab on one machine (a sandbox
// too, so the only difference is the tunnel).

// splitBlueRed is blue-red with red on machine b: the learning switch and
// blue on a, red behind a VXLAN tunnel.
const splitBlueRed = `name: split
machines:
  a: {address: 192.0.2.1}
  b: {address: 192.0.2.2}
host:
  sysctls: {net.ipv4.ip_forward: 1}
bridges:
  ovsbr0: {fail-mode: secure, openflow: learning-switch, addresses: [10.0.0.254/24]}
namespaces:
  blue:
    interfaces:
      veth1: {peer: ovsbr0/veth0, addresses: [10.0.0.1/24]}
  red:
    machine: b
    interfaces:
      veth3: {peer: ovsbr0/veth2, addresses: [10.0.0.2/24]}
`

// splitStar makes a star lab span machines a and b: its bridge stretched
// over both, every other namespace on b.
func splitStar(star []byte) string {
	s := strings.Replace(string(star), "\nbridges:\n  br:\n", "\nmachines:\n  a: {address: 192.0.2.1}\n  b: {address: 192.0.2.2}\nbridges:\n  br:\n    machines: [a, b]\n", 1)
	lines := strings.Split(s, "\n")
	var out []string
	for _, l := range lines {
		out = append(out, l)
		var i int
		if n, _ := fmt.Sscanf(l, "  h%03d:", &i); n == 1 && i%2 == 0 {
			out = append(out, "    machine: b")
		}
	}
	return strings.Join(out, "\n")
}

func (c *config) multiMachineSection(w io.Writer) error {
	pre := newPrefix()
	ma, mb, one, sys := pre+"a", pre+"b", pre+"one", pre+"sys"
	defer func() {
		for _, n := range []string{ma, mb, one, sys} {
			exec.Command(c.netlab, "sandbox", "rm", n).Run()
		}
	}()
	pid := map[string]string{}
	for _, n := range []string{ma, mb} {
		out, err := exec.Command(c.netlab, "sandbox", "create", n).CombinedOutput()
		if err != nil {
			return fmt.Errorf("sandbox create %s: %v: %s", n, err, out)
		}
		var p int
		if _, err := fmt.Sscanf(string(out[strings.Index(string(out), "keeper ")+len("keeper "):]), "%d", &p); err != nil {
			return fmt.Errorf("sandbox create %s: %s", n, out)
		}
		pid[n] = fmt.Sprint(p)
	}
	if out, err := exec.Command("ip", "link", "add", "ul", "netns", pid[ma], "type", "veth", "peer", "name", "ul", "netns", pid[mb]).CombinedOutput(); err != nil {
		return fmt.Errorf("underlay: %v: %s", err, out)
	}
	for n, a := range map[string]string{ma: "192.0.2.1/24", mb: "192.0.2.2/24"} {
		if out, err := exec.Command(c.netlab, "sandbox", "exec", n, "--", "sh", "-c", "ip addr add "+a+" dev ul && ip link set ul up").CombinedOutput(); err != nil {
			return fmt.Errorf("underlay address: %v: %s", err, out)
		}
	}
	split := filepath.Join(c.tmp, "split.yaml")
	if err := os.WriteFile(split, []byte(splitBlueRed), 0o644); err != nil {
		return err
	}
	nl := func(sb string, args ...string) error {
		out, err := exec.Command(c.netlab, append([]string{"--sandbox", sb}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("netlab --sandbox %s %s: %v: %s", sb, strings.Join(args, " "), err, out)
		}
		return nil
	}
	fmt.Fprintf(w, "\n## Labs over two machines\n\nTwo of root's sandboxes stand in for two machines, joined by a veth underlay (IPv4, MTU 1500); the same lab on one machine is in a sandbox too, so the tunnel is the only difference.\n\n")

	// TCP blue -> red through the learning switch: red behind a VXLAN
	// tunnel, against blue-red on one machine; both up at once, measured in
	// turn.
	for _, step := range [][]string{{ma, "up", "-q", "--machine", "a", split}, {mb, "up", "-q", "--machine", "b", split},
		{one, "up", "-q", filepath.Join(c.root, "labs", "blue-red.yaml")},
		{sys, "up", "-q", filepath.Join(c.tmp, "user", "blue-red-system.yaml")}} {
		if err := nl(step[0], step[1:]...); err != nil {
			return err
		}
	}
	across := place{name: "across", sandbox: ma}
	serverB := place{name: "b", sandbox: mb}
	single := place{name: "one machine", sandbox: one}
	singleSys := place{name: "one machine, system ports", sandbox: sys}
	var acrossRuns, oneRuns, sysRuns, ratios, sysRatios []float64
	for run := 0; run < c.runs; run++ {
		g1, err := c.tcpBetween(serverB, across, "split", "10.0.0.2")
		if err != nil {
			return err
		}
		g2, err := c.tcpBetween(single, single, "blue-red", "10.0.0.2")
		if err != nil {
			return err
		}
		g3, err := c.tcpBetween(singleSys, singleSys, "blue-red", "10.0.0.2")
		if err != nil {
			return err
		}
		acrossRuns, oneRuns, sysRuns = append(acrossRuns, g1), append(oneRuns, g2), append(sysRuns, g3)
		ratios, sysRatios = append(ratios, g1/g2), append(sysRatios, g1/g3)
	}
	for _, step := range [][]string{{ma, "down", "-q", "split"}, {mb, "down", "-q", "split"}, {one, "down", "-q", "blue-red"}, {sys, "down", "-q", "blue-red"}} {
		if err := nl(step[0], step[1:]...); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "TCP blue → red through the OVS learning switch (iperf3 -t %g), Gb/s, medians of %d runs measured in turn; the ratio is the median of the runs' ratios. One machine's ports are AF_XDP (netlab's default); the tunnel port is a system port (a VXLAN device has no XDP of its own).\n\n", c.iperf.Seconds(), c.runs)
	fmt.Fprintf(w, "| | Gb/s | across ÷ this | runs |\n|---|---:|---:|---|\n")
	fmt.Fprintf(w, "| one machine (labs/blue-red.yaml, AF_XDP ports) | %.2f | %.2f× | %s |\n", median(oneRuns), median(ratios), list(oneRuns))
	fmt.Fprintf(w, "| one machine, system ports | %.2f | %.2f× | %s |\n", median(sysRuns), median(sysRatios), list(sysRuns))
	fmt.Fprintf(w, "| across two machines (red on b) | %.2f | | %s |\n", median(acrossRuns), list(acrossRuns))

	// Up of a 100-namespace star: split over the two machines (both ups at
	// once, until the later is done) against all of it on one.
	fmt.Fprintf(w, "\nUp of a 100-namespace star (OVS with system ports, and Linux bridge): its bridge stretched over the two machines with 50 namespaces on each, both `up`s started at once, until the later is done; against the whole star up on one machine. Seconds, medians of %d runs.\n\n", c.runs)
	fmt.Fprintf(w, "| bridge | two machines | one machine | ÷ one machine |\n|---|---:|---:|---:|\n")
	for _, br := range c.bridges {
		file := filepath.Join(c.tmp, "star-one-"+br+".yaml")
		args := []string{"-n", "100", "-bridge", br, "-o", file}
		if br == "ovs" {
			args = append(args, "-port-type", "system")
		}
		if b, err := exec.Command(c.star, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("star: %v: %s", err, b)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		splitFile := filepath.Join(c.tmp, "star-split-"+br+".yaml")
		if err := os.WriteFile(splitFile, []byte(splitStar(b)), 0o644); err != nil {
			return err
		}
		var two, oneUp []float64
		for run := 0; run < c.runs; run++ {
			t0 := time.Now()
			errc := make(chan error, 2)
			for _, m := range []struct{ sb, name string }{{ma, "a"}, {mb, "b"}} {
				go func() { errc <- nl(m.sb, "up", "-q", "--machine", m.name, splitFile) }()
			}
			if err := errors.Join(<-errc, <-errc); err != nil {
				return err
			}
			two = append(two, time.Since(t0).Seconds())
			for _, sb := range []string{ma, mb} {
				if err := nl(sb, "down", "-q", "--all"); err != nil {
					return err
				}
			}
			t0 = time.Now()
			if err := nl(one, "up", "-q", file); err != nil {
				return err
			}
			oneUp = append(oneUp, time.Since(t0).Seconds())
			if err := nl(one, "down", "-q", "--all"); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %.2f× |\n", br, median(two), median(oneUp), median(two)/median(oneUp))
	}
	return nil
}

// tcpBetween measures TCP from blue (in client's place) to addr (red, in
// server's place) of lab, with iperf3 through `netlab exec`.
func (c *config) tcpBetween(server, client place, lab, addr string) (float64, error) {
	srv := c.argv(server, c.netlab, "exec", lab, "red", "--", "iperf3", "-s", "-1", "-D", "-B", addr)
	if out, err := exec.Command(srv[0], srv[1:]...).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("iperf3 server: %v: %s", err, out)
	}
	return c.iperfClient(c.argv(client, c.netlab, "exec", lab, "blue", "--", "iperf3", "-c", addr, "-t", fmt.Sprint(c.iperf.Seconds()), "-J", "--connect-timeout", "1000"))
}
