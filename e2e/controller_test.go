package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// freeTCPPort finds a free TCP port on loopback (in the test's sandbox).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestController: the shipped labs/controller.yaml driven by a real
// OpenFlow controller, Debian's os-ken (osken-manager) running the lab's
// learning-switch app on loopback, started by the test and ended by its PID.
// The bridge connects (status says so), the hosts ping each other through
// the flows the controller installs, netlab flows shows those flows as
// foreign (not the lab's), a second up leaves them alone, and the bridge's
// listening controller port (ptcp:) answers ovs-ofctl.
func TestController(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("osken-manager"); err != nil {
		testkit.SkipOrFail(t, "needs osken-manager (Debian's python3-os-ken; make deps installs it)")
	}
	before := fingerprint(t)
	p := newPrefix(t)
	dir := t.TempDir()
	port, listen := freeTCPPort(t), freeTCPPort(t)
	lab := strings.NewReplacer("tcp:127.0.0.1:6653", fmt.Sprintf("tcp:127.0.0.1:%d", port),
		"ptcp:6654:127.0.0.1", fmt.Sprintf("ptcp:%d:127.0.0.1", listen)).Replace(readFile(t, "../labs/controller.yaml"))
	file := writeFile(t, dir, "controller.yaml", lab)
	app, err := filepath.Abs("../labs/controller/learning_switch_13.py")
	if err != nil {
		t.Fatal(err)
	}

	log, err := os.Create(filepath.Join(dir, "osken.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	ctl := exec.Command("osken-manager", "--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", fmt.Sprint(port), app)
	ctl.Stdout, ctl.Stderr = log, log
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Wait() }()
	// Ours: ended by its PID, once (the test's end and its cleanup).
	stop := sync.OnceFunc(func() {
		_ = ctl.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = ctl.Process.Kill()
			<-done
		}
	})
	t.Cleanup(stop)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("osken-manager does not listen on %d:\n%s", port, b)
		}
	}

	labUp(t, file, p, "controller")
	name := p + "controller"
	t.Cleanup(func() { netlab(t, "down", name) })
	target := fmt.Sprintf("controller tcp:127.0.0.1:%d (connected)", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		st := mustNetlab(t, "status", name)
		if strings.Contains(st, target) && strings.Contains(st, fmt.Sprintf("controller ptcp:%d:127.0.0.1 (listening)", listen)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never says %q:\n%s", target, st)
		}
	}
	if r := mustNetlab(t, "check", name); !strings.Contains(r, "3 passed, 0 failed") {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("check through the controller: %s\nosken-manager:\n%s", r, b)
	}
	f := flows(t, name)
	var missToController, learnt int
	for _, fl := range f[0].Flows {
		if fl.Owner != "foreign" {
			t.Errorf("a flow of the controller's counted as %s: %+v", fl.Owner, fl)
		}
		if fl.Match == "" && strings.HasPrefix(fl.Actions, "CONTROLLER") {
			missToController++
		}
		if strings.Contains(fl.Match, "dl_dst=") {
			learnt++
		}
	}
	if missToController != 1 || learnt == 0 {
		t.Errorf("controller's flows: %d table-miss, %d learned: %+v", missToController, learnt, f[0].Flows)
	}
	if got := mustNetlab(t, "up", "--prefix", p, file); !strings.Contains(got, "up to date") {
		t.Errorf("second up: %s", got)
	}
	if n := len(flows(t, name)[0].Flows); n != len(f[0].Flows) {
		t.Errorf("%d flows after a second up, %d before: up touched the controller's", n, len(f[0].Flows))
	}
	// The bridge listens too (ptcp:), as for a second controller.
	out, err := exec.Command("ovs-ofctl", "dump-flows", fmt.Sprintf("tcp:127.0.0.1:%d", listen)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "actions=CONTROLLER") {
		t.Errorf("ovs-ofctl dump-flows through the bridge's listening port: %v\n%s", err, out)
	}

	mustNetlab(t, "down", name)
	stop()
	sameHost(t, before)
}
