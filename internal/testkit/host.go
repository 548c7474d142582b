// Fingerprint: what end-to-end tests use to check that a lab left its host
// as it found it. The host is the network namespace (and mount and PID
// namespaces) the test runs in: the machine's, or a sandbox's.

package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Fingerprint describes what a lab may change on the host: namespaces, links
// with their details, addresses, routes, rules, the forwarding and
// reverse-path sysctls, the nftables ruleset, the OVS databases netlab may
// use, and the OVS daemons, netlab reflectors and service supervisors of
// this network namespace (the machine also shows the processes of
// sandboxes, which are theirs, not the host's). Take one before a lab goes
// up and compare after it goes down: they must be identical.
func Fingerprint() string {
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
	// The command lines, not the pids: a daemon restarted by a test (and
	// repaired by up) is the same daemon for the host's purposes. Zombies
	// awaiting a slow reaper are gone already.
	b.WriteString("## processes\n")
	for _, args := range Processes() {
		prog, _, _ := strings.Cut(args, " ")
		if strings.Contains(args, "netlab reflect") || strings.Contains(args, "netlab supervise") || strings.Contains(args, "netlab view-exec") || strings.Contains(args, "netlab timeline-run") || filepath.Base(prog) == "ovs-vswitchd" || filepath.Base(prog) == "ovsdb-server" {
			b.WriteString(args + "\n")
		}
	}
	// Counters and timers change by themselves; the rest must not.
	return volatile.ReplaceAllString(b.String(), "")
}

var volatile = regexp.MustCompile(`(?m)(valid_lft \S+|preferred_lft \S+| expires \S+|  *\d+sec|cookie \S+|^# (Generated|Completed) .*$|\[\d+:\d+\])`)

// Processes returns the command lines of the live processes in this
// process's network namespace, sorted by pid.
func Processes() []string {
	var ours syscall.Stat_t
	if syscall.Stat("/proc/self/ns/net", &ours) != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		var ns syscall.Stat_t
		if syscall.Stat(dir+"/ns/net", &ns) != nil || ns.Ino != ours.Ino || ns.Dev != ours.Dev {
			continue
		}
		stat, err := os.ReadFile(dir + "/stat")
		if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		cmdline, err := os.ReadFile(dir + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out = append(out, strings.Join(strings.Fields(strings.ReplaceAll(string(cmdline), "\x00", " ")), " "))
	}
	return out
}

// Diff is a small line diff, enough to see what a lab left behind.
func Diff(a, b string) string {
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
