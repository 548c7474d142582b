package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/netlab-dev/netlab/internal/tundev"
)

// The kernel settings that decide whether a user may make a sandbox, as
// /proc/sys paths.
var userNSSettings = []string{
	"kernel/unprivileged_userns_clone",             // Debian's and Ubuntu's patch; 0: users may not
	"user/max_user_namespaces",                     // 0: nobody may
	"user/max_net_namespaces",                      // 0: no new network namespaces
	"user/max_mnt_namespaces",                      // 0: no new mount namespaces
	"user/max_pid_namespaces",                      // 0: no new PID namespaces
	"kernel/apparmor_restrict_unprivileged_userns", // Ubuntu 23.10+: 1: a user namespace without capabilities
}

// Diagnose explains why a sandbox could not be made and what to do, from
// the error and this machine's kernel settings; "" when it has nothing to
// add to the error.
func Diagnose(err error) string {
	return explain(err, readSettings(), os.Geteuid())
}

// Settings are the kernel settings that decide whether a user may make
// user namespaces, by sysctl name (kernel.unprivileged_userns_clone, ...);
// a setting this kernel does not have is absent.
func Settings() map[string]string { return readSettings() }

// RefusedToUsers names the first setting of settings that refuses the
// namespaces of a sandbox to every program of a user alike ("" for none):
// no other program of theirs can make one either, only root.
func RefusedToUsers(settings map[string]string) string {
	for _, k := range machineWide {
		if settings[k] == "0" {
			return k + "=0"
		}
	}
	return ""
}

// readSettings reads userNSSettings, by sysctl name (dots); a setting this
// kernel does not have is absent.
func readSettings() map[string]string {
	settings := map[string]string{}
	for _, s := range userNSSettings {
		if b, rerr := os.ReadFile("/proc/sys/" + s); rerr == nil {
			settings[strings.ReplaceAll(s, "/", ".")] = strings.TrimSpace(string(b))
		}
	}
	return settings
}

// machineWide are the settings that refuse user namespaces (or the other
// namespaces of a sandbox) to every program of a user alike.
var machineWide = []string{"kernel.unprivileged_userns_clone", "user.max_user_namespaces", "user.max_net_namespaces", "user.max_mnt_namespaces", "user.max_pid_namespaces"}

// Delegable says whether err, a sandbox this process could not make, is a
// refusal of this program rather than of the user: AppArmor's restriction
// of user namespaces (kernel.apparmor_restrict_unprivileged_userns=1) takes
// the capabilities of a user namespace made by a program that no AppArmor
// profile allows them, and spares one whose profile does, as netlab's once
// installed (make install). Then another program can make the sandbox for
// this one (netlab sandbox run). A setting that refuses every program of
// the user (kernel.unprivileged_userns_clone=0, a max_*_namespaces limit at
// 0), a seccomp profile, root without its capabilities: no other program of
// the user can do better, and they are not delegable.
func Delegable(err error) bool { return delegable(err, readSettings(), os.Geteuid()) }

func delegable(err error, settings map[string]string, euid int) bool {
	var se *Error
	if !errors.As(err, &se) || !se.UserNS || euid == 0 || !isEPERM(err) {
		return false
	}
	return settings["kernel.apparmor_restrict_unprivileged_userns"] == "1" && RefusedToUsers(settings) == ""
}

// ProfileName is the name of netlab's AppArmor profile
// (packaging/apparmor/netlab): the label its processes carry.
const ProfileName = "netlab"

// AppArmor is what AppArmor says about user namespaces for this process.
type AppArmor struct {
	// Enabled: the AppArmor security module is active.
	Enabled bool
	// Restricted: kernel.apparmor_restrict_unprivileged_userns=1, user
	// namespaces of programs no profile allows them have no capabilities.
	Restricted bool
	// Label is this process's confinement as AppArmor names it:
	// "unconfined", or "netlab (unconfined)" under netlab's profile; ""
	// when AppArmor is not active or says nothing.
	Label string
}

// AppArmorState reads AppArmor's state for this process: the module
// (/sys/module/apparmor/parameters/enabled), the restriction's sysctl, and
// the process's label (/proc/self/attr/apparmor/current, or
// /proc/self/attr/current on kernels without the per-module directory).
func AppArmorState() AppArmor {
	var a AppArmor
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil {
		a.Enabled = strings.TrimSpace(string(b)) == "Y"
	}
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil {
		a.Restricted = strings.TrimSpace(string(b)) == "1"
	}
	if !a.Enabled {
		return a
	}
	for _, p := range []string{"/proc/self/attr/apparmor/current", "/proc/self/attr/current"} {
		if b, err := os.ReadFile(p); err == nil {
			a.Label = strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
			break
		}
	}
	return a
}

// Profiled says whether the process runs under netlab's profile.
func (a AppArmor) Profiled() bool {
	name, _, _ := strings.Cut(a.Label, " ")
	return name == ProfileName
}

// explain is Diagnose on given settings (sysctl names with dots), for the
// user euid.
func explain(err error, settings map[string]string, euid int) string {
	var se *Error
	userns := errors.As(err, &se) && se.UserNS
	if userns && euid == 0 && isEPERM(err) {
		return "root without its capabilities (a reduced bounding set: setpriv, capsh, a container) can make no sandbox: mapping uid 0 into a user namespace needs CAP_SETFCAP, and root of that namespace would get no capability from an empty bounding set; run netlab with root's capabilities"
	}
	var why []string
	if userns && settings["kernel.unprivileged_userns_clone"] == "0" {
		why = append(why, "kernel.unprivileged_userns_clone=0: this kernel lets only root make user namespaces.\n"+
			"  fix: sudo sysctl -w kernel.unprivileged_userns_clone=1   (keep it: a file in /etc/sysctl.d/)")
	}
	for _, k := range []string{"user.max_user_namespaces", "user.max_net_namespaces", "user.max_mnt_namespaces", "user.max_pid_namespaces"} {
		if k == "user.max_user_namespaces" && !userns {
			continue
		}
		if settings[k] == "0" {
			why = append(why, fmt.Sprintf("%s=0: no process may make such a namespace.\n  fix: sudo sysctl -w %s=15000   (keep it: a file in /etc/sysctl.d/)", k, k))
		}
	}
	if userns && settings["kernel.apparmor_restrict_unprivileged_userns"] == "1" {
		why = append(why, "kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 23.10 and later): a user namespace made by a program without an AppArmor profile that allows it has no capabilities in it.\n"+
			"  fix: sudo make install   (in netlab's source tree: /usr/local/bin/netlab and its AppArmor profile, loaded; PREFIX=DIR for another place)\n"+
			"  then use that netlab. A netlab elsewhere needs the profile with its own path: packaging/apparmor/netlab,\n"+
			"      abi <abi/4.0>,\n      include <tunables/global>\n      profile netlab /usr/local/bin/netlab flags=(unconfined) {\n        userns,\n        include if exists <local/netlab>\n      }\n"+
			"    in /etc/apparmor.d/netlab, loaded with: sudo apparmor_parser -r /etc/apparmor.d/netlab\n"+
			"  go test binaries (netlabtest.Main) then run their tests in a sandbox that netlab makes (netlab sandbox run, found in NETLAB_BIN or on PATH): no sysctl to change")
	}
	if len(why) > 0 {
		return strings.Join(why, "\n")
	}
	switch {
	case userns && isEPERM(err):
		return "the kernel refused a user namespace to this user although the usual settings allow it: a container's seccomp profile or a security module may forbid it; run netlab as root, or outside that container"
	case errors.Is(err, syscall.ENOSPC):
		return "the limit on user namespaces (user.max_user_namespaces) is reached or zero: raise it with sudo sysctl -w user.max_user_namespaces=15000"
	}
	return ""
}

// TunUsable says whether this process may open /dev/net/tun, which TUN
// reflectors, TAP devices and Open vSwitch's userspace datapath (its bridges'
// internal ports are TAP devices) need. In a user namespace that is not
// root's, only the device's mode lets a user in: the stock udev rule of
// Debian and Ubuntu makes it 0666; some machines have 0600. why and fix say
// what is wrong when it is not usable.
func TunUsable() (ok bool, why, fix string) {
	a := tundev.CheckAccess()
	if a.Opens {
		return true, fmt.Sprintf("opens (mode %04o)", a.Mode), ""
	}
	return false, a.Why() + ": TUN reflectors, TAPs and Open vSwitch bridges (its userspace datapath opens it) will not work in a sandbox of this user's", a.Fix()
}
