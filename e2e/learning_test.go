package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type flowsJSON []struct {
	Bridge string `json:"bridge"`
	Flows  []struct {
		Table   int    `json:"table"`
		Owner   string `json:"owner"`
		Match   string `json:"match"`
		Actions string `json:"actions"`
	} `json:"flows"`
	MACs []struct {
		MAC       string `json:"mac"`
		Port      int    `json:"port"`
		Namespace string `json:"namespace"`
		Interface string `json:"interface"`
	} `json:"learned_macs"`
}

func flows(t *testing.T, lab string) flowsJSON {
	t.Helper()
	var f flowsJSON
	out := mustNetlab(t, "flows", lab, "--json")
	if err := json.Unmarshal([]byte(out), &f); err != nil || len(f) != 1 {
		t.Fatalf("netlab flows --json: %v\n%s", err, out)
	}
	return f
}

func learned(f flowsJSON) map[string]int {
	m := map[string]int{}
	for _, e := range f[0].MACs {
		m[e.MAC] = e.Port
	}
	return m
}

// capture runs tcpdump in a namespace until stop is called, and returns
// what it printed. The process is ours: it is ended by its PID.
func capture(t *testing.T, ns, dev string) (stop func() string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "capture.txt")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-l", "-e")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// tcpdump says "listening on" once its socket is open.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(out); strings.Contains(string(b), "listening on") {
			break
		}
	}
	return func() string {
		time.Sleep(300 * time.Millisecond) // let the last packets be printed
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		f.Close()
		b, _ := os.ReadFile(out)
		return string(b)
	}
}

func appctlTrace(t *testing.T, bridge, flow string) string {
	t.Helper()
	cmd := exec.Command("ovs-appctl", "ofproto/trace", bridge, flow)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR=/run/netlab/ovs")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// A system OVS: its default run directory.
		cmd = exec.Command("ovs-appctl", "ofproto/trace", bridge, flow)
		if out2, err2 := cmd.CombinedOutput(); err2 == nil {
			return string(out2)
		}
		t.Fatalf("ofproto/trace %s %s: %v\n%s", bridge, flow, err, out)
	}
	return string(out)
}

// TestLearningSwitch: the shipped learning-switch lab learns from traffic,
// switches unicast instead of flooding it, keeps what it learned across up,
// and swaps exactly the static flows when the file's flows change.
func TestLearningSwitch(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "learning-switch.yaml", readFile(t, "../labs/learning-switch.yaml"))
	labUp(t, file, p, "learning-sw")
	lab := p + "learning-sw"
	blue, red, green := p+"blue", p+"red", p+"green"
	const blueMAC, redMAC, greenMAC = "02:00:00:00:02:01", "02:00:00:00:02:02", "02:00:00:00:02:03"

	if m := learned(flows(t, lab)); len(m) != 0 {
		t.Fatalf("table 10 before any traffic: %v", m)
	}

	stop := capture(t, green, "eth0")
	for i := 0; i < 3; i++ {
		ping(t, blue, "10.0.2.2")
	}
	seen := stop()
	m := learned(flows(t, lab))
	if m[blueMAC] != 1 || m[redMAC] != 2 || len(m) != 2 {
		t.Errorf("learned after blue pinged red: %v, want blue on 1 and red on 2 only", m)
	}
	if !strings.Contains(seen, "Request who-has 10.0.2.2") {
		t.Errorf("green did not see blue's ARP broadcast:\n%s", seen)
	}
	if strings.Contains(seen, "ICMP echo") {
		t.Errorf("green saw the unicast ICMP between blue and red: the switch flooded it:\n%s", seen)
	}
	t.Logf("green saw %d packets, none of the ICMP unicast", strings.Count(seen, "\n")-2)

	// The pipeline, traced: a known destination goes to its port only; an
	// unknown one floods.
	br := p + "lsbr0"
	known := appctlTrace(t, br, "in_port=1,dl_src="+blueMAC+",dl_dst="+redMAC)
	if !strings.Contains(known, "output:2") || strings.Contains(known, "output:3") {
		t.Errorf("trace to red's MAC does not go to port 2 only:\n%s", known)
	}
	unknown := appctlTrace(t, br, "in_port=1,dl_src="+blueMAC+",dl_dst=02:00:00:00:09:09")
	if !strings.Contains(unknown, "output:2") || !strings.Contains(unknown, "output:3") {
		t.Errorf("trace to an unknown MAC does not flood:\n%s", unknown)
	}

	tcp(t, red, blue, "10.0.2.2")
	tcp(t, green, red, "10.0.2.3")
	tcp(t, blue, green, "10.0.2.1")
	if r := mustNetlab(t, "check", lab); !strings.Contains(r, "4 passed, 0 failed") {
		t.Errorf("check: %s", r)
	}

	// up again: nothing to do, and what was learned stays.
	if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
		t.Errorf("second up: %s", got)
	}
	if m2 := learned(flows(t, lab)); m2[blueMAC] != 1 || m2[redMAC] != 2 {
		t.Errorf("learned entries lost by a second up: %v", m2)
	}

	// Editing flows: replaces exactly the static flows, keeps learned ones.
	edited := strings.Replace(readFile(t, file), `"table=0,priority=200,dl_type=0x88cc,actions=drop"`, `"table=0,priority=200,dl_type=0x88b5,actions=drop"`, 1)
	writeFile(t, dir, "learning-switch.yaml", edited)
	plan := mustNetlab(t, "plan", "--prefix", p, file)
	if strings.Count(plan, "\n") < 3 || !strings.Contains(plan, "--bundle add-flows "+br) || strings.Contains(plan, "link add") {
		t.Errorf("plan after editing flows:\n%s", plan)
	}
	mustNetlab(t, "up", "-q", "--prefix", p, file)
	f := flows(t, lab)
	var lldp, local bool
	for _, fl := range f[0].Flows {
		if fl.Owner == "lab" && strings.Contains(fl.Match, "0x88cc") {
			lldp = true
		}
		if fl.Owner == "lab" && strings.Contains(fl.Match, "0x88b5") {
			local = true
		}
	}
	if lldp || !local {
		t.Errorf("static flows after edit: old present %v, new present %v", lldp, local)
	}
	if m3 := learned(f); m3[blueMAC] != 1 || m3[redMAC] != 2 {
		t.Errorf("learned entries lost by a flow edit: %v", m3)
	}
	ping(t, green, "10.0.2.1")

	mustNetlab(t, "down", lab)
	sameHost(t, before)
}
