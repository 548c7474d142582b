package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// labStatus is `netlab status LAB --json`.
func labStatus(t *testing.T, lab string) *engine.LabStatus {
	t.Helper()
	var st []*engine.LabStatus
	out := mustNetlab(t, "status", "--json", lab)
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("status --json %s: %v\n%s", lab, err, out)
	}
	return st[0]
}

// service finds a service's status in the lab's (namespace as on the
// machine).
func service(t *testing.T, st *engine.LabStatus, ns, name string) engine.ServiceStatus {
	t.Helper()
	for _, n := range st.Namespaces {
		if n.Name != ns {
			continue
		}
		for _, s := range n.Services {
			if s.Name == name {
				return s
			}
		}
	}
	t.Fatalf("lab %s: no service %s/%s in its status", st.Lab, ns, name)
	return engine.ServiceStatus{}
}

// servicePIDs are the programs of a lab's services.
func servicePIDs(t *testing.T, lab string) []int {
	t.Helper()
	var pids []int
	for _, n := range labStatus(t, lab).Namespaces {
		for _, s := range n.Services {
			pids = append(pids, s.PID)
		}
	}
	return pids
}

// running says whether pid is a process (not a zombie).
func running(pid int) bool { return pid > 0 && len(alive([]int{pid})) == 1 }

// until polls cond for up to 20 s (waitFor's shape for a plain
// condition) and fails the test with what when it never holds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitFor(t, 20*time.Second, what, func() (bool, string) { return cond(), "" })
}

// TestServicesOSPF: the shipped OSPF lab, three FRR routers each with its
// own configuration placed over /etc/frr and a /run/frr of its own, comes
// up converged (up --wait) twice at once under two prefixes; one copy
// reroutes round a cut link while the other keeps its route; each goes
// down leaving no program behind; the machine's /etc/frr is never written.
func TestServicesOSPF(t *testing.T) {
	requireRoot(t)
	testkit.RequireRoot(t, "FRR", "/usr/lib/frr/zebra", "/usr/lib/frr/ospfd")
	before := fingerprint(t)
	machineConf, _ := os.ReadFile("/etc/frr/ospfd.conf")
	p, q := newPrefix(t), newPrefix(t)
	lab, other := p+"ospf", q+"ospf"
	t.Cleanup(func() { netlab(t, "down", lab); netlab(t, "down", other) })
	results := make(chan result, 2)
	for _, pre := range []string{p, q} {
		go func() { results <- run(t, nil, netlabBin, "up", "--wait", "90s", "--prefix", pre, "../labs/ospf.yaml") }()
	}
	for range 2 {
		if r := <-results; r.code != 0 || !strings.Contains(r.out, "settled") {
			t.Fatalf("up --wait of two copies at once: exit %d\n%s", r.code, r.out)
		}
	}
	for _, l := range []string{lab, other} {
		if r := netlab(t, "check", l); r.code != 0 {
			t.Fatalf("after up --wait, check %s:\n%s", l, r.out)
		}
	}
	st := labStatus(t, lab)
	var pids []int
	for _, n := range st.Namespaces {
		for _, s := range n.Services {
			if s.State != "running" || !s.Ready || !running(s.PID) {
				t.Errorf("%s/%s: %+v, want running, ready, alive", n.Name, s.Name, s)
			}
			pids = append(pids, s.PID)
		}
	}
	if len(pids) != 6 {
		t.Fatalf("want 6 services (zebra, ospfd on 3 routers), got %d", len(pids))
	}
	// Each router sees its own configuration; the machine's is untouched.
	for _, r := range []string{"r1", "r2", "r3"} {
		conf := mustNetlab(t, "exec", lab, r, "--", "cat", "/etc/frr/ospfd.conf")
		if want := "router-id 10.255.0." + r[1:]; !strings.Contains(conf, want) {
			t.Errorf("%s's /etc/frr/ospfd.conf lacks %q:\n%s", r, want, conf)
		}
		// Its /run/frr holds its own daemons' sockets.
		ls := mustNetlab(t, "exec", lab, r, "--", "ls", "/run/frr")
		if !strings.Contains(ls, "zserv.api") || !strings.Contains(ls, "ospfd.vty") {
			t.Errorf("%s's /run/frr: %s", r, ls)
		}
	}
	if now, _ := os.ReadFile("/etc/frr/ospfd.conf"); string(now) != string(machineConf) {
		t.Errorf("the machine's /etc/frr/ospfd.conf changed")
	}
	// Names: every namespace's programs resolve the lab's names.
	for name, want := range map[string]string{"h2": "10.3.3.2", "r3": "10.255.0.3", "r3-to-r1": "10.0.13.2"} {
		if out := mustNetlab(t, "exec", lab, "h1", "--", "getent", "hosts", name); !strings.HasPrefix(out, want+" ") {
			t.Errorf("h1 resolving %s: %q, want %s", name, out, want)
		}
	}
	via := func(dev string) func() bool {
		return func() bool {
			r := netlab(t, "exec", lab, "r1", "--", "ip", "route", "show", "10.3.3.0/24")
			return r.code == 0 && strings.Contains(r.out, "dev "+dev)
		}
	}
	until(t, "r1 routes 10.3.3.0/24 over to-r3", via("to-r3"))
	// Cut r1-r3 both ways: OSPF's dead interval (4 s) passes, and traffic
	// goes round by r2.
	mustNetlab(t, "impair", lab, "r1/to-r3", "--loss", "100%")
	mustNetlab(t, "impair", lab, "r3/to-r1", "--loss", "100%")
	until(t, "r1 reroutes 10.3.3.0/24 over to-r2", via("to-r2"))
	ping(t, p+"h1", "10.3.3.2")
	// The other copy's routers never saw the cut.
	if r := netlab(t, "exec", other, "r1", "--", "ip", "route", "show", "10.3.3.0/24"); !strings.Contains(r.out, "dev to-r3") {
		t.Errorf("the other copy's r1 moved its route too:\n%s", r.out)
	}
	mustNetlab(t, "impair", lab, "r1/to-r3", "--reset")
	mustNetlab(t, "impair", lab, "r3/to-r1", "--reset")
	until(t, "r1 routes 10.3.3.0/24 over to-r3 again", via("to-r3"))
	if logs := mustNetlab(t, "logs", lab, "r1/ospfd"); !strings.Contains(logs, "ospfd") {
		t.Errorf("netlab logs r1/ospfd: %q", logs)
	}
	otherPIDs := servicePIDs(t, other)
	mustNetlab(t, "down", other)
	out := mustNetlab(t, "down", lab)
	pids = append(pids, otherPIDs...)
	for _, want := range []string{"stopping service " + p + "r1/zebra", "removed service " + p + "r3/ospfd"} {
		if !strings.Contains(out, want) {
			t.Errorf("down did not say %q:\n%s", want, out)
		}
	}
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("pid %d (a service's program) outlived down", pid)
		}
	}
	sameHost(t, before)
}

// servicesLab: a web server on a, a client on b that waits for it by name
// (after: and the hosts file), a shared file, a private directory.
const servicesLab = `name: svc
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.61.0.1/24]}
    files:
      /srv/www/index.html: "hello from a\n"
    dirs: [/var/lib/web]
    services:
      web:
        command: [sh, -c, "echo $$ > /var/lib/web/pid; exec nc -lk 8080"]
        ready: {tcp: 8080}
  b:
    interfaces:
      eth0: {addresses: [10.61.0.2/24]}
    services:
      client:
        command: [sh, -c, "until nc -z -w 1 a 8080; do sleep 0.2; done; echo reached a by name; exec sleep infinity"]
        after: [a/web]
        ready: {log: "reached a by name"}
`

// TestServicesLifecycle: services start in after: order once ready, reach
// each other by name, see their files; one killed by hand is restarted by
// its supervisor; one whose supervisor was killed is started again by up,
// which says why; one whose file changed is restarted; one the file drops is
// stopped; down ends them all and leaves the host as it was.
func TestServicesLifecycle(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	dir := t.TempDir()
	text := servicesLab
	file := writeFile(t, dir, "svc.yaml", text)
	p := newPrefix(t)
	lab := p + "svc"
	t.Cleanup(func() { netlab(t, "down", lab) })
	out := mustNetlab(t, "up", "--prefix", p, file)
	// after: client starts once web is ready.
	if iw, ic := strings.Index(out, "supervise "+p+"a/web"), strings.Index(out, "supervise "+p+"b/client"); iw < 0 || ic < iw {
		t.Errorf("want web started before client:\n%s", out)
	}
	st := labStatus(t, lab)
	web, client := service(t, st, p+"a", "web"), service(t, st, p+"b", "client")
	if !web.Ready || !client.Ready || !running(web.PID) || !running(client.PID) {
		t.Fatalf("after up: web %+v, client %+v", web, client)
	}
	// Its files and private directory, in its view only.
	if out := mustNetlab(t, "exec", lab, "a", "--", "cat", "/srv/www/index.html", "/var/lib/web/pid"); !strings.Contains(out, "hello from a") {
		t.Errorf("a's view: %q", out)
	}
	if _, err := os.Stat("/srv/www/index.html"); err == nil {
		t.Errorf("/srv/www/index.html exists on the machine")
	}
	if r := netlab(t, "exec", lab, "b", "--", "cat", "/srv/www/index.html"); r.code == 0 {
		t.Errorf("b sees a's file: %q", r.out)
	}
	// Up again changes nothing.
	if out := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("second up acted:\n%s", out)
	}

	// Killed by hand: the supervisor starts it again (restart: on-failure).
	if err := syscall.Kill(web.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	until(t, "web restarted by its supervisor", func() bool {
		s := service(t, labStatus(t, lab), p+"a", "web")
		return s.Restarts == 1 && s.PID != web.PID && running(s.PID) && s.Ready
	})
	if logs := mustNetlab(t, "logs", lab, "a/web"); !strings.Contains(logs, "killed by SIGKILL") {
		t.Errorf("web's log does not say how it ended:\n%s", logs)
	}

	// Supervisor killed: the program dies with it; up starts it again and
	// says why.
	clientPID := service(t, labStatus(t, lab), p+"b", "client").PID
	sup := supervisorOf(t, lab, p+"b", "client")
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	until(t, "client's program ends with its supervisor", func() bool { return !running(clientPID) })
	// status shows it down, and the drift up would repair.
	if st := mustNetlab(t, "status", lab); !strings.Contains(st, "service client: down") || !strings.Contains(st, "supervise "+p+"b/client") {
		t.Errorf("status with client's supervisor gone:\n%s", st)
	}
	out = mustNetlab(t, "up", "--prefix", p, file)
	if !strings.Contains(out, "supervise "+p+"b/client") || !strings.Contains(out, "it was not running") {
		t.Errorf("up after the supervisor died:\n%s", out)
	}

	// A file changed: its service restarts; the other does not.
	webPID := service(t, labStatus(t, lab), p+"a", "web").PID
	file = writeFile(t, dir, "svc.yaml", strings.ReplaceAll(text, "hello from a", "hello again"))
	out = mustNetlab(t, "up", "--prefix", p, file)
	if !strings.Contains(out, "supervise "+p+"a/web") || !strings.Contains(out, "what it runs changed") || strings.Contains(out, "supervise "+p+"b/client") {
		t.Errorf("up after a's file changed:\n%s", out)
	}
	if running(webPID) {
		t.Errorf("web's old program (pid %d) still runs", webPID)
	}
	if out := mustNetlab(t, "exec", lab, "a", "--", "cat", "/srv/www/index.html"); !strings.Contains(out, "hello again") {
		t.Errorf("a's file after the change: %q", out)
	}

	// The file drops client: up stops it.
	clientPID = service(t, labStatus(t, lab), p+"b", "client").PID
	dropped := text[:strings.Index(text, "    services:\n      client:")]
	file = writeFile(t, dir, "svc.yaml", strings.ReplaceAll(dropped, "hello from a", "hello again"))
	out = mustNetlab(t, "up", "--prefix", p, file)
	if !strings.Contains(out, "service "+p+"b/client") {
		t.Errorf("up without client said nothing of it:\n%s", out)
	}
	if running(clientPID) {
		t.Errorf("client (pid %d) still runs after the file dropped it", clientPID)
	}

	webPID = service(t, labStatus(t, lab), p+"a", "web").PID
	mustNetlab(t, "down", lab)
	if running(webPID) {
		t.Errorf("web (pid %d) outlived down", webPID)
	}
	sameHost(t, before)
}

// supervisorOf finds the pid of the `netlab supervise` process of a
// service from its pidfile.
func supervisorOf(t *testing.T, lab, ns, name string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/run/netlab/labs/%s/services/%s/%s.pid", lab, ns, name))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatalf("pidfile of %s/%s: %q: %v", ns, name, b, err)
	}
	return pid
}

// TestServicesNotReady: a service that never gets ready fails up within
// its timeout, naming it and showing its log's last lines; one that keeps
// ending fails it sooner; down then leaves nothing.
func TestServicesNotReady(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "nr.yaml", `name: nr
namespaces:
  a:
    services:
      slow:
        command: [sh, -c, "echo warming up, never ready; exec sleep infinity"]
        ready: {tcp: 9}
        timeout: 2s
`)
	p := newPrefix(t)
	t.Cleanup(func() { netlab(t, "down", p+"nr") })
	r := netlab(t, "up", "--prefix", p, file)
	if r.code == 0 || !strings.Contains(r.out, p+"a/slow") || !strings.Contains(r.out, "warming up, never ready") || !strings.Contains(r.out, "2s") {
		t.Errorf("up with a service never ready: exit %d\n%s", r.code, r.out)
	}
	pid := service(t, labStatus(t, p+"nr"), p+"a", "slow").PID
	mustNetlab(t, "down", p+"nr")
	if running(pid) {
		t.Errorf("the unready service (pid %d) outlived down", pid)
	}
	sameHost(t, before)

	file = writeFile(t, dir, "nr.yaml", `name: nr
namespaces:
  a:
    services:
      dies:
        command: [sh, -c, "echo cannot open config; exit 3"]
        ready: {tcp: 9}
        timeout: 60s
`)
	start := time.Now()
	r = netlab(t, "up", "--prefix", p, file)
	if r.code == 0 || !strings.Contains(r.out, "keeps ending") || !strings.Contains(r.out, "cannot open config") || !strings.Contains(r.out, "status 3") {
		t.Errorf("up with a service that keeps ending: exit %d\n%s", r.code, r.out)
	}
	t.Logf("a service that keeps ending failed up after %v (its timeout: 60s)", time.Since(start).Round(time.Millisecond))
	mustNetlab(t, "down", p+"nr")
	sameHost(t, before)
}

// TestServicesBGP: the shipped eBGP lab comes up with its routes learned;
// a pulled cable moves r1's path to h2 through AS 65002, and plugging it
// back moves it home; down leaves no program and the host as it was.
func TestServicesBGP(t *testing.T) {
	requireRoot(t)
	testkit.RequireRoot(t, "FRR", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd")
	before := fingerprint(t)
	p := newPrefix(t)
	lab := p + "bgp"
	t.Cleanup(func() { netlab(t, "down", lab) })
	if out := mustNetlab(t, "up", "--wait", "90s", "--prefix", p, "../labs/bgp.yaml"); !strings.Contains(out, "settled") {
		t.Fatalf("up --wait:\n%s", out)
	}
	via := func(dev string) func() bool {
		return func() bool {
			r := netlab(t, "exec", lab, "r1", "--", "ip", "route", "show", "10.3.3.0/24")
			return r.code == 0 && strings.Contains(r.out, "proto bgp") && strings.Contains(r.out, "dev "+dev)
		}
	}
	until(t, "r1 learns 10.3.3.0/24 from AS 65003 over to-r3", via("to-r3"))
	pids := servicePIDs(t, lab)
	mustNetlab(t, "link", lab, "r1/to-r3", "down")
	until(t, "r1 learns 10.3.3.0/24 through AS 65002", via("to-r2"))
	ping(t, p+"h1", "10.3.3.2")
	mustNetlab(t, "link", lab, "r1/to-r3", "up")
	until(t, "r1's path to 10.3.3.0/24 back over to-r3", via("to-r3"))
	mustNetlab(t, "down", lab)
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("pid %d (a service's program) outlived down", pid)
		}
	}
	sameHost(t, before)
}
