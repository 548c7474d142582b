package supervise

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/topology"
)

// listener is a service whose program is this test binary listening on
// (TCP) or bound to (UDP) the address in the namespace, after a moment.
func (l *lab) listener(name, network, address string) service.Spec {
	l.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	return service.Spec{Lab: l.name, NS: l.ns, Name: name, Command: []string{exe},
		Env: []string{childEnv + "=listen " + network + " " + address}, Restart: topology.RestartOnFailure, Hash: "h-" + name}
}

// A TCP or UDP probe passes once the program listens (binds) in the
// service's namespace, over IPv4 or IPv6, and not for another port nor
// for a socket of the machine's.
func TestWaitReadyPort(t *testing.T) {
	tests := []struct {
		network string
		ready   topology.Ready
		other   topology.Ready
		saying  string
	}{
		{"tcp4", topology.Ready{TCP: 8080}, topology.Ready{TCP: 8081}, "tcp port 8080 bound"},
		{"tcp6", topology.Ready{TCP: 8080}, topology.Ready{TCP: 8081}, "tcp port 8080 bound"},
		{"udp4", topology.Ready{UDP: 5353}, topology.Ready{UDP: 5354}, "udp port 5353 bound"},
		{"udp6", topology.Ready{UDP: 5353}, topology.Ready{UDP: 5354}, "udp port 5353 bound"},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			l := newLab(t)
			port := tt.ready.TCP + tt.ready.UDP
			spec := l.listener("srv", tt.network, ":"+strconv.Itoa(port))
			l.start(spec)
			if err := l.sup.WaitReady(spec, &tt.ready, patience); err != nil {
				t.Fatal(err)
			}
			if ok, why := l.sup.Ready(spec, &tt.ready); !ok || why != tt.saying {
				t.Errorf("Ready = %v, %q; want %q", ok, why, tt.saying)
			}
			if ok, why := l.sup.Ready(spec, &tt.other); ok || !strings.HasPrefix(why, "nothing on") {
				t.Errorf("Ready for another port = %v, %q", ok, why)
			}
			// A socket of the machine's (a free port, so the tests may run
			// on a machine's own stack) is not the namespace's.
			machine := topology.Ready{}
			if strings.HasPrefix(tt.network, "tcp") {
				ln, err := net.Listen("tcp", ":0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				machine.TCP = ln.Addr().(*net.TCPAddr).Port
			} else {
				pc, err := net.ListenPacket("udp", ":0")
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				machine.UDP = pc.LocalAddr().(*net.UDPAddr).Port
			}
			if ok, why := l.sup.Ready(spec, &machine); ok {
				t.Errorf("Ready sees the machine's socket: %q", why)
			}
		})
	}
}

// A command probe runs in the service's view (its namespace, its
// environment) and passes when the command succeeds.
func TestWaitReadyCommand(t *testing.T) {
	l := newLab(t)
	mark := filepath.Join(t.TempDir(), "mark")
	spec := l.service("cmd", topology.RestartOnFailure, `sleep 0.3; touch "$MARK"; exec sleep 1000`,
		"MARK="+mark, "NETNS="+netnsID(t, l.ns))
	l.start(spec)
	ready := &topology.Ready{Command: []string{"sh", "-c", `test -e "$MARK" && test "$(readlink /proc/self/ns/net)" = "$NETNS"`}}
	if err := l.sup.WaitReady(spec, ready, patience); err != nil {
		t.Fatal(err)
	}
	if ok, why := l.sup.Ready(spec, ready); !ok || !strings.HasSuffix(why, " succeeded") {
		t.Errorf("Ready = %v, %q", ok, why)
	}
	if ok, why := l.sup.Ready(spec, &topology.Ready{Command: []string{"sh", "-c", "echo not yet; exit 1"}}); ok || !strings.Contains(why, "exit status 1 not yet") {
		t.Errorf("Ready of a failing command = %v, %q", ok, why)
	}
}

// A log probe passes on a line the program printed since it last started,
// not on one of an earlier run.
func TestWaitReadyLog(t *testing.T) {
	l := newLab(t)
	ready := &topology.Ready{Log: `^listening on \d+$`}
	spec := l.service("logged", topology.RestartOnFailure, `echo booting; sleep 0.3; echo listening on 8080; exec sleep 1000`)
	l.start(spec)
	if err := l.sup.WaitReady(spec, ready, patience); err != nil {
		t.Fatal(err)
	}
	if ok, why := l.sup.Ready(spec, ready); !ok || why != "log: listening on 8080" {
		t.Errorf("Ready = %v, %q", ok, why)
	}
	// Started again (its files changed), it is not ready by the line the
	// first run printed: the log is kept, the probe reads from the start.
	spec.Command = []string{"/bin/sh", "-c", `echo booting again; exec sleep 1000`}
	spec.Hash = "h-logged-2"
	l.start(spec)
	waitFor(t, "the second run's line", func() bool { return strings.Contains(l.log("logged"), "booting again\n") },
		func() string { return l.log("logged") })
	if ok, why := l.sup.Ready(spec, ready); ok || !strings.HasPrefix(why, "no line of the log matches") {
		t.Errorf("Ready by an earlier run's line: %v, %q", ok, why)
	}
	if log := l.log("logged"); !strings.Contains(log, "listening on 8080") {
		t.Errorf("the log does not keep the first run's lines:\n%s", log)
	}
}

// WaitReady gives up at once on a service that keeps ending (3 restarts)
// or has ended, with its log's last lines, and at its timeout on one that
// runs but never gets ready.
func TestWaitReadyFails(t *testing.T) {
	probe := &topology.Ready{TCP: 8080}
	t.Run("keeps ending", func(t *testing.T) {
		l := newLab(t)
		spec := l.service("crash", topology.RestartAlways, `echo "boom: address in use" >&2; exit 1`)
		l.start(spec)
		// Long enough that reaching it would say "not ready within".
		err := l.sup.WaitReady(spec, probe, 10*time.Minute)
		for _, want := range []string{"keeps ending before it is ready", "exited with status 1", "its log ends:", "boom: address in use"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("WaitReady = %v, want it to say %q", err, want)
			}
		}
	})
	t.Run("ended", func(t *testing.T) {
		l := newLab(t)
		spec := l.service("dies", topology.RestartNo, `sleep 1; echo dying; exit 2`)
		l.start(spec)
		err := l.sup.WaitReady(spec, probe, 10*time.Minute)
		for _, want := range []string{"ended before it was ready", "dying"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("WaitReady = %v, want it to say %q", err, want)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		l := newLab(t)
		spec := l.service("mute", topology.RestartOnFailure, `echo up but deaf; exec sleep 1000`)
		l.start(spec)
		err := l.sup.WaitReady(spec, probe, 300*time.Millisecond)
		for _, want := range []string{"not ready within 300ms", "nothing on tcp port 8080 yet", "up but deaf"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("WaitReady = %v, want it to say %q", err, want)
			}
		}
	})
}

// StartService of a program view-exec cannot run says so, with the log.
func TestStartServiceNoProgram(t *testing.T) {
	l := newLab(t)
	spec := l.service("ghost", topology.RestartNo, "")
	spec.Command = []string{"/nonexistent/netlab-test-program"}
	t.Cleanup(func() { l.sup.StopService(l.ns, "ghost") })
	err := l.sup.StartService(spec)
	if err == nil {
		// It may have been seen running (view-exec) before it failed.
		st := l.waitState("ghost", "the program to end", func(st *service.State) bool { return st.Exit != "" })
		if st.Exit != "exited with status 127" {
			t.Errorf("state %+v, want exited with status 127", st)
		}
	} else if !strings.Contains(err.Error(), "ended at once") {
		t.Errorf("StartService = %v", err)
	}
	if log := l.log("ghost"); !strings.Contains(log, "/nonexistent/netlab-test-program") {
		t.Errorf("the log does not say what failed:\n%s", log)
	}
}
