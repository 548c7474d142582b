package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killStats counts what the kill suite did, for its log (and the README).
type killStats struct {
	kills, repairedByUp, cleanByDown int
}

// killAt starts netlab with args and kills it with SIGKILL after d: the
// process alone, or with group its whole process group (as a terminal's
// Ctrl-C reaches the helpers it is running: ovsdb-tool, ovs-vsctl, ...).
// It reports whether netlab was still running when the kill came.
func killAt(t *testing.T, d time.Duration, group bool, args ...string) bool {
	t.Helper()
	cmd := exec.Command(netlabBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(d):
	}
	if group {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	} else {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	<-done
	return true
}

// timed runs netlab and returns how long it took; it fails the test unless
// netlab succeeds.
func timed(t *testing.T, args ...string) time.Duration {
	t.Helper()
	t0 := time.Now()
	mustNetlab(t, args...)
	return time.Since(t0)
}

// TestKillAtAnyMoment: kill -9 of up and of down at moments spread over
// their whole run — not only between journal steps: while netlab's private
// Open vSwitch is made and started or stopped, nftables tables written,
// reflectors started — of the netlab process alone or of its whole process
// group. After each: down leaves the host exactly as it was, or up repairs
// and the lab's expectations pass (then down). A sample here; make test-long
// kills hundreds of times.
func TestKillAtAnyMoment(t *testing.T) {
	requireRoot(t)
	per := 3 // kills per lab and verb
	if long() {
		per = 60
	}
	var st killStats
	for _, sl := range shippedLabs(t) {
		if sl.name != "blue-red" && sl.name != "nat" && sl.name != "tun-refl" && !(long() && (sl.name == "emulated" || sl.name == "blue-red-sys")) {
			continue
		}
		t.Run(sl.name, func(t *testing.T) {
			hostRoutesFree(t, sl.hostRoutes...)
			before := fingerprint(t)
			p := newPrefix(t)
			lab := p + sl.name
			up := []string{"up", "-q", "--prefix", p, sl.file}
			// How long each verb takes from an empty machine (netlab's private
			// OVS started and stopped with the lab): the kills spread over it.
			tUp := timed(t, up...)
			tDown := timed(t, "down", lab)
			for k := 0; k < per; k++ {
				for _, verb := range []string{"up", "down"} {
					if verb == "down" {
						mustNetlab(t, up...)
					}
					span, args := tUp, up
					if verb == "down" {
						span, args = tDown, []string{"down", "-q", lab}
					}
					// Stratified: the k-th kill falls in the k-th slice of the run.
					at := time.Duration(float64(span) * (float64(k) + 0.5) / float64(per))
					group := k%2 == 1
					if !killAt(t, at, group, args...) {
						continue // it finished first: no kill
					}
					st.kills++
					if (k+len(verb))%2 == 0 {
						// Repair: up after the kill converges and works.
						if r := netlab(t, up...); r.code != 0 {
							t.Fatalf("%s killed after %v (group %v), then up: exit %d\n%s", verb, at, group, r.code, r.out)
						}
						if r := netlab(t, "check", lab); r.code != 0 || !strings.Contains(r.out, " 0 failed") {
							t.Errorf("%s killed after %v, up, check:\n%s", verb, at, r.out)
						}
						st.repairedByUp++
					}
					r := netlab(t, "down", lab)
					if r.code != 0 {
						t.Fatalf("%s killed after %v (group %v), then down: exit %d\n%s", verb, at, group, r.code, r.out)
					}
					if after := fingerprint(t); after != before {
						log, _ := exec.Command("sh", "-c", "grep -v '|INFO|' /run/netlab/ovs/ovs-vswitchd.log | tail -20").CombinedOutput()
						t.Fatalf("%s killed after %v (group %v), then down:\n%s\nhost changed:\n%s\nOpen vSwitch's log:\n%s", verb, at, group, r.out, diff(before, after), log)
					}
					st.cleanByDown++
				}
			}
		})
	}
	t.Logf("kill -9 at any moment: %d kills of up and down; %d repaired by up with expectations passing; %d followed by down with the host identical",
		st.kills, st.repairedByUp, st.cleanByDown)
	if st.kills < 6 {
		t.Errorf("only %d kills landed before their verb finished: %s", st.kills, fmt.Sprint(st))
	}
}
