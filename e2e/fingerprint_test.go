package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// fingerprint describes what a lab may change on the host: namespaces, links
// with their details, addresses, routes, rules, the forwarding and
// reverse-path sysctls, the nftables ruleset, the OVS databases netlab may
// use, and the OVS daemons. Tests take one before a lab goes up and compare
// after it goes down: they must be identical.
func fingerprint(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	section := func(title string, name string, args ...string) {
		out, err := exec.Command(name, args...).CombinedOutput()
		b.WriteString("## " + title + "\n")
		if err != nil {
			b.WriteString("error: " + err.Error() + "\n")
		}
		b.Write(out)
	}
	section("netns", "ip", "netns", "list")
	section("links", "ip", "-d", "link", "show")
	section("addresses", "ip", "addr", "show")
	section("routes4", "ip", "route", "show", "table", "all")
	section("routes6", "ip", "-6", "route", "show", "table", "all")
	section("rules", "ip", "rule", "show")
	section("sysctls", "sysctl", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
		"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
		"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad")
	section("nft", "nft", "list", "ruleset")
	section("iptables", "iptables-save")
	section("ip6tables", "ip6tables-save")
	for _, sock := range []string{"/run/openvswitch/db.sock", "/run/netlab/ovs/db.sock"} {
		if _, err := os.Stat(sock); err == nil {
			section("ovs "+sock, "ovs-vsctl", "--timeout=5", "--db=unix:"+sock, "show")
		}
	}
	// netlab's supervised processes (reflectors) must all be gone.
	if out, err := exec.Command("pgrep", "-af", "netlab reflect").Output(); err == nil {
		b.WriteString("## netlab reflect\n" + volatilePid.ReplaceAllString(string(out), "") + "\n")
	}
	// Live OVS daemons (zombies awaiting a slow reaper are gone already).
	out, _ := exec.Command("ps", "-eo", "pid=,stat=,args=").Output()
	b.WriteString("## ovs daemons\n")
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// The command line, not the pid: a daemon restarted by a test (and
		// repaired by up) is the same daemon for the host's purposes.
		if len(f) >= 3 && !strings.HasPrefix(f[1], "Z") && (strings.Contains(f[2], "ovs-vswitchd") || strings.Contains(f[2], "ovsdb-server")) {
			b.WriteString(strings.Join(f[2:], " ") + "\n")
		}
	}
	// Counters and timers change by themselves; the rest must not.
	return volatile.ReplaceAllString(b.String(), "")
}

var volatilePid = regexp.MustCompile(`(?m)^\d+ `)

var volatile = regexp.MustCompile(`(?m)(valid_lft \S+|preferred_lft \S+| expires \S+|  *\d+sec|cookie \S+|^# (Generated|Completed) .*$|\[\d+:\d+\])`)

// sameHost fails the test when the host differs from the fingerprint.
func sameHost(t *testing.T, before string) {
	t.Helper()
	after := fingerprint(t)
	if after != before {
		t.Errorf("host changed:\n%s", diff(before, after))
	}
}

// diff is a small line diff, enough to see what a lab left behind.
func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	inA := map[string]int{}
	for _, l := range al {
		inA[l]++
	}
	inB := map[string]int{}
	for _, l := range bl {
		inB[l]++
	}
	var out strings.Builder
	for _, l := range al {
		if inB[l] == 0 {
			out.WriteString("- " + l + "\n")
		} else {
			inB[l]--
		}
	}
	for _, l := range bl {
		if inA[l] == 0 {
			out.WriteString("+ " + l + "\n")
		} else {
			inA[l]--
		}
	}
	return out.String()
}
