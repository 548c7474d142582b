// Package doctor checks what netlab needs on this machine and says how to fix
// what is missing: privileges (and how users get labs: sandboxes, or for a
// group on the machine's own stack a sudo rule, never file capabilities),
// /dev/net/tun, AppArmor's restriction of user namespaces (netlab's profile,
// and how go test binaries get their sandbox), kernel features, Open
// vSwitch and iproute2. It only reads:
// /proc, /sys, PATH and the binary's file capabilities; it changes nothing
// (its sandbox check makes a sandbox and lets it go).
package doctor

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/internal/tundev"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/kernel"
	"github.com/netlab-dev/netlab/internal/sandbox"
)

// Level of a finding.
type Level string

// Levels: OK, a warning (some feature will not work), or fatal (the main job,
// bringing a lab up, cannot run).
const (
	OK    Level = "ok"
	Warn  Level = "warn"
	Fatal Level = "FAIL"
)

// Finding is one check's result.
type Finding struct {
	Check string `json:"check"`
	Level Level  `json:"level"`
	What  string `json:"what"`
	Fix   string `json:"fix,omitempty"`
}

// Capabilities netlab uses (linux/capability.h).
var caps = []struct {
	bit       uint
	name, why string
	fatal     bool
}{
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN", "links, addresses, routes, nftables, TUN/TAP, Open vSwitch", true},
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "creating and entering network namespaces (setns, mount of /run/netns)", true},
	{unix.CAP_NET_RAW, "CAP_NET_RAW", "ping and Open vSwitch's packet sockets", false},
}

// Run performs every check.
func Run() []Finding {
	var out []Finding
	status := procStatus("/proc/self/status")
	privileged := sandbox.Privileged()
	probe := sandbox.Probe()
	sb := sandboxFindings(privileged, probe)
	// Without the capabilities labs live in a sandbox: missing ones are
	// fatal only when no sandbox can be made either.
	if privileged || !CanRun(sb) {
		out = append(out, privileges(status)...)
	} else {
		out = append(out, Finding{Check: "privileges", Level: OK,
			What: "not root: labs live in this user's sandbox (below); only root puts them on the machine's own network stack (see \"a group on the machine\")"})
	}
	exe, _ := os.Executable()
	if os.Getuid() != 0 && exe != "" && hasFileCaps(exe) {
		out = append(out, fileCapabilities(exe))
	}
	out = append(out, users(exe)...)
	out = append(out, apparmorFindings(readAppArmorFacts(exe, probe))...)
	if privileged {
		// For anyone else the sandbox's findings say what matters: whether
		// a sandbox of theirs may open it.
		out = append(out, tunDevice())
	}
	out = append(out, sb...)
	out = append(out, kernelFeatures(privileged)...)
	out = append(out, tools()...)
	return out
}

// sandboxFindings checks that a sandbox can be made (by making one, which
// leaves nothing) and what works in one: for a user without the
// capabilities that is where every lab lives; for root, where --sandbox
// puts one.
func sandboxFindings(privileged bool, probe error) []Finding {
	var out []Finding
	sb := Finding{Check: "sandbox"}
	level := Fatal
	if privileged {
		level = Warn // labs still run on the machine's own stack
	}
	switch err := probe; {
	case err != nil && !dumpable():
		// The kernel's refusal is then this process's own doing, not a
		// setting, a seccomp profile or a security module's.
		sb.Level, sb.What = level, err.Error()
		sb.Fix = "this netlab process is not dumpable (the kernel makes it so when exec changes its credentials: file capabilities, a set-id bit), so the /proc files of what it starts, a new user namespace's uid_map among them, are root's and it may not write them; run netlab as started by this user, without privileges of its file"
	case err != nil:
		sb.Level, sb.What = level, err.Error()
		sb.Fix = sandbox.Diagnose(err)
		if sb.Fix == "" {
			sb.Fix = "see README, \"Without root\""
		}
	case sandbox.NeedsUserNamespace():
		sb.Level, sb.What = OK, "labs of this user run in their sandbox: a user namespace of theirs (they are root inside, nobody else is mapped: no newuidmap needed) with network, mount and PID namespaces of its own"
	default:
		sb.Level, sb.What = OK, "--sandbox NAME puts labs in network, mount and PID namespaces of their own"
	}
	out = append(out, sb)
	if _, err := exec.LookPath("nsenter"); err != nil {
		out = append(out, Finding{Check: "nsenter", Level: level, What: "missing: commands enter a sandbox with it", Fix: "apt-get install util-linux"})
	}
	if sandbox.NeedsUserNamespace() {
		tun := Finding{Check: "/dev/net/tun in a sandbox"}
		if ok, why, fix := sandbox.TunUsable(); ok {
			tun.Level, tun.What = OK, why+": TUN reflectors, TAPs and Open vSwitch bridges work in this user's sandbox"
		} else {
			tun.Level, tun.What, tun.Fix = Warn, why, fix
		}
		out = append(out, tun, Finding{Check: "AF_XDP in a sandbox", Level: OK,
			What: "Open vSwitch ports in this user's sandbox are system (AF_PACKET) ports: an AF_XDP port needs an XDP program, which the kernel loads only for the machine's root"})
	}
	return out
}

// dumpable says whether this process is dumpable (prctl PR_GET_DUMPABLE).
func dumpable() bool {
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	return err != nil || d == 1
}

// CanRun says whether the main job can run: no fatal finding.
func CanRun(fs []Finding) bool {
	for _, f := range fs {
		if f.Level == Fatal {
			return false
		}
	}
	return true
}

func procStatus(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func privileges(status map[string]string) []Finding {
	eff, err := strconv.ParseUint(status["CapEff"], 16, 64)
	if err != nil {
		return []Finding{{Check: "capabilities", Level: Warn, What: "cannot read CapEff from /proc/self/status"}}
	}
	var out []Finding
	uid := os.Geteuid()
	for _, c := range caps {
		f := Finding{Check: c.name}
		if eff&(1<<c.bit) != 0 {
			f.Level, f.What = OK, fmt.Sprintf("present (%s)", c.why)
		} else {
			f.Level, f.What = Warn, fmt.Sprintf("missing: needed for %s", c.why)
			if c.fatal {
				f.Level = Fatal
			}
			f.Fix = "run netlab as root (sudo netlab ...)"
			if uid == 0 {
				f.Fix = "you are root but without this capability: the process was started with a reduced capability set (a container, setpriv, capsh, systemd CapabilityBoundingSet); run netlab outside it"
			}
		}
		out = append(out, f)
	}
	return out
}

// fileCapabilities says that the binary's file capabilities (setcap, as
// netlab once advised) are shed for this user, and why: they would reach
// the whole machine's network, every user's labs, for anyone who may run
// the file (see package privilege). Whether the kernel granted them or not
// (a nosuid mount, no_new_privs, a tracer), they give this user nothing.
func fileCapabilities(exe string) Finding {
	return Finding{Check: "file capabilities", Level: Warn,
		What: fmt.Sprintf("%s has file capabilities (setcap): netlab sheds them at start for every user but root (uid %d here), since they would reach the whole machine's network, every user's labs, for anyone who may run the file; labs of this user live in their sandbox", exe, os.Getuid()),
		Fix:  "sudo setcap -r " + exe + "   (they give nobody anything: root has every capability anyway; see \"users\" for labs on the machine's own stack)"}
}

// users says how users get labs: in their own sandboxes, with nothing to
// set up (first, and for most); and, for a group that needs the machine's
// own network stack, a sudo rule, with what it truly grants. File
// capabilities are no way to do it (fileCapabilities). sudo's env_reset
// keeps the user's NETLAB_* variables out.
func users(exe string) []Finding {
	if exe == "" || !filepath.IsAbs(exe) {
		exe = "/usr/local/bin/netlab"
	}
	return []Finding{
		{Check: "users", Level: OK,
			What: "every user's labs live in their own sandbox, with nothing to set up: the way to share this machine"},
		{Check: "a group on the machine", Level: OK,
			What: "for a group whose labs must be on the machine's own network stack, a sudo rule: %netlab ALL=(root) " + exe +
				"  (visudo -f /etc/sudoers.d/netlab; the binary and its directories writable by root only). " +
				"It makes the group root over the machine's network, every lab on it included, and more: " +
				"sudo netlab exec LAB NS -- CMD runs any command as root, so give it only to whom you would give root. " +
				"File capabilities (setcap) are no way to do this: netlab sheds them for every user but root"},
	}
}

func hasFileCaps(path string) bool {
	sz, err := unix.Getxattr(path, "security.capability", nil)
	return err == nil && sz > 0
}

// tunDevice says whether /dev/net/tun opens here, and who else may open it:
// a TAP's non-root owner (netlab tap-mac, a VM) and a rootless sandbox can
// only when its mode lets everyone in, as the stock udev rule of Debian and
// Ubuntu does (0666).
func tunDevice() Finding {
	f := Finding{Check: "/dev/net/tun"}
	a := tundev.CheckAccess()
	switch {
	case a.Opens && !a.Everyone():
		f.Level = Warn
		f.What = fmt.Sprintf("opens for this process, but its mode is %04o: only its owner (uid %d) and group (gid %d) may open it, so a TAP's non-root owner cannot attach (netlab tap-mac, a VM) and a rootless sandbox has no TUN, TAP or Open vSwitch bridge", a.Mode, a.UID, a.GID)
		f.Fix = a.Fix()
	case a.Opens:
		f.Level, f.What = OK, "opens (TUN reflectors, TAP devices); mode 0666: a TAP's owner and rootless sandboxes may open it too"
	case a.Missing:
		f.Level, f.What, f.Fix = Warn, "missing: TUN/TAP devices cannot be made", a.Fix()
	default:
		f.Level, f.What, f.Fix = Warn, a.Why(), a.Fix()
		if f.Fix == "" {
			f.Fix = "run as root"
		}
	}
	return f
}

// kernelConfig reads /proc/config.gz or /boot/config-$(uname -r).
func kernelConfig() map[string]string {
	m := map[string]string{}
	var r io.Reader
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			r = z
		}
	}
	if r == nil {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			rel := unix.ByteSliceToString(u.Release[:])
			if f, err := os.Open("/boot/config-" + rel); err == nil {
				defer f.Close()
				r = f
			}
		}
	}
	if r == nil {
		return nil
	}
	s := bufio.NewScanner(r)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = v
		}
	}
	return m
}

func kernelFeatures(privileged bool) []Finding {
	cfg := kernelConfig()
	var out []Finding
	feature := func(name, key, what string, fatal bool) {
		f := Finding{Check: "kernel " + name}
		_, builtin := os.Stat("/sys/module/" + strings.ToLower(strings.TrimPrefix(key, "CONFIG_")))
		switch v := cfg[key]; {
		case v == "y" || v == "m" || builtin == nil:
			f.Level, f.What = OK, what
		case cfg == nil:
			f.Level, f.What = OK, what+" (kernel config not readable; assumed)"
		default:
			f.Level, f.What, f.Fix = Warn, name+" is not built into this kernel ("+key+")", "use a kernel with "+key
			if fatal {
				f.Level = Fatal
			}
		}
		out = append(out, f)
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		out = append(out, Finding{Check: "kernel network namespaces", Level: Fatal, What: "no /proc/self/ns/net", Fix: "a kernel with CONFIG_NET_NS"})
	} else {
		out = append(out, Finding{Check: "kernel network namespaces", Level: OK, What: "present"})
	}
	feature("veth", "CONFIG_VETH", "veth pairs", true)
	feature("bridge", "CONFIG_BRIDGE", "Linux bridges", false)
	feature("tun", "CONFIG_TUN", "TUN/TAP", false)
	feature("nftables", "CONFIG_NF_TABLES", "nftables (NAT)", false)
	feature("masquerade", "CONFIG_NFT_MASQ", "nftables masquerade", false)
	ovsdp := Finding{Check: "openvswitch datapath"}
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil || cfg["CONFIG_OPENVSWITCH"] == "y" || cfg["CONFIG_OPENVSWITCH"] == "m" {
		ovsdp.Level, ovsdp.What = OK, "kernel datapath available (bridges use datapath_type=system)"
	} else {
		ovsdp.Level, ovsdp.What = OK, "no kernel datapath: bridges use Open vSwitch's userspace datapath (datapath_type=netdev), which netlab picks by itself; veth ends on them get tx checksum offload off so TCP works"
	}
	out = append(out, ovsdp)
	if !privileged {
		// A user may not open an AF_XDP socket on the machine, and in a
		// sandbox of theirs AF_XDP cannot work (sandboxFindings).
		return out
	}
	xdp := Finding{Check: "kernel AF_XDP sockets"}
	if kernel.HasAFXDP() {
		xdp.Level, xdp.What = OK, "available: veth ports of userspace OVS bridges of up to 16 ports are AF_XDP ports (afxdp-nonpmd) when Open vSwitch lists the type (netlab status shows each port's type)"
	} else {
		xdp.Level, xdp.What, xdp.Fix = Warn, "not available: OVS ports are system (AF_PACKET) ports, about half the TCP throughput of AF_XDP ones on a userspace bridge", "a kernel with CONFIG_XDP_SOCKETS"
	}
	return append(out, xdp, impairFinding(), vlanFinding())
}

func tools() []Finding {
	var out []Finding
	tool := func(cmd, pkg, what string, fatal bool) {
		f := Finding{Check: cmd}
		if p, err := exec.LookPath(cmd); err == nil {
			f.Level, f.What = OK, p
		} else {
			f.Level, f.What, f.Fix = Warn, "missing: needed for "+what, "apt-get install "+pkg
			if fatal {
				f.Level = Fatal
			}
		}
		out = append(out, f)
	}
	tool("ip", "iproute2", "netlab exec and tests", true)
	tool("ovs-vsctl", "openvswitch-switch", "Open vSwitch bridges", false)
	tool("ovs-vswitchd", "openvswitch-switch", "Open vSwitch bridges (netlab starts a private instance when none runs)", false)
	tool("ovsdb-server", "openvswitch-switch", "Open vSwitch bridges", false)
	tool("ovs-ofctl", "openvswitch-switch", "OpenFlow flows", false)
	tool("nft", "nftables", "inspecting NAT rules by hand (netlab itself talks netlink)", false)
	return out
}
