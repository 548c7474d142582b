package topology

import (
	"fmt"
	"strings"
)

// checkLabName returns why a lab name is unusable, or "". Lab names end up
// in nftables table names, markers and derived interface names, hence the
// small alphabet and length.
func checkLabName(s string) string {
	switch {
	case s == "":
		return "required: the lab's name, such as name: blue-red"
	case len(s) > MaxLabName:
		return fmt.Sprintf("lab name %q is %d characters; at most %d", s, len(s), MaxLabName)
	case !(s[0] >= 'a' && s[0] <= 'z') || !allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789-"):
		return fmt.Sprintf("lab name %q: use a-z, 0-9 and -, starting with a letter", s)
	}
	return ""
}

// maxNamespaceName keeps namespace names short enough for /run/netns paths
// and markers while leaving room for readable names.
const maxNamespaceName = 32

func checkNamespaceName(s string) string {
	switch {
	case s == "":
		return "empty namespace name"
	case len(s) > maxNamespaceName:
		return fmt.Sprintf("namespace name %q is %d characters; at most %d", s, len(s), maxNamespaceName)
	case !allIn(s[:1], "abcdefghijklmnopqrstuvwxyz0123456789") || !allIn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-"):
		return fmt.Sprintf("namespace name %q: use a-z, 0-9, _ and -, starting with a letter or digit", s)
	case s == Host:
		return "host is the root namespace: write its settings under the top-level host: key"
	}
	return ""
}

// checkIfName returns why name cannot be a Linux interface name, or "". It
// follows the kernel's dev_valid_name, and also rejects '%', which the
// kernel would expand as a name template.
func checkIfName(name, what string) string {
	switch {
	case name == "":
		return fmt.Sprintf("empty %s name", what)
	case len(name) > MaxIfName:
		return fmt.Sprintf("%s name %q is %d bytes; Linux allows at most %d", what, name, len(name), MaxIfName)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a usable %s name", name, what)
	case name[0] == '-':
		// The name reaches command lines (ovs-vsctl, ovs-ofctl, ethtool,
		// tcpdump), which would read it as an option.
		return fmt.Sprintf("%s name %q starts with -, which tools read as an option", what, name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c == '%' || c <= ' ' || c == 0x7f || c == '\u00a0' || c == '\u0085' {
			return fmt.Sprintf("%s name %q contains %q, which Linux interface names cannot", what, name, c)
		}
	}
	return ""
}

// checkSysctlKey accepts net.* names only: netlab sets per-namespace network
// settings, and other sysctls are not namespaced.
func checkSysctlKey(k string) string {
	if !strings.HasPrefix(k, "net.") {
		return fmt.Sprintf("sysctl %q: netlab only manages net.* sysctls", k)
	}
	for _, seg := range strings.Split(k, ".") {
		if seg == "" || !allIn(seg, "abcdefghijklmnopqrstuvwxyz0123456789_-") {
			return fmt.Sprintf("sysctl %q: want dotted segments of a-z, 0-9, _ and -, such as net.ipv4.ip_forward", k)
		}
	}
	return ""
}

func allIn(s, alphabet string) bool {
	for _, c := range s {
		if !strings.ContainsRune(alphabet, c) {
			return false
		}
	}
	return true
}
