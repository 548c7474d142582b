package ovs

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultDatapath returns "system" if the kernel has the openvswitch
// datapath (/sys/module/openvswitch exists, or openvswitch.ko is listed in
// /lib/modules/$(uname -r)/modules.dep or modules.builtin), else "netdev",
// the userspace datapath that works on any kernel.
func DefaultDatapath() string {
	if _, err := os.Stat("/sys/module/openvswitch"); err == nil {
		return DatapathSystem
	}
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return DatapathNetdev
	}
	dir := filepath.Join("/lib/modules", strings.TrimSpace(string(rel)))
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil && listsOpenvswitch(b) {
			return DatapathSystem
		}
	}
	return DatapathNetdev
}

// listsOpenvswitch reports whether a modules.dep or modules.builtin file
// names the openvswitch module ("kernel/net/openvswitch/openvswitch.ko[.xz|.zst|.gz]",
// in modules.dep followed by ": deps").
func listsOpenvswitch(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		mod, _, _ := strings.Cut(sc.Text(), ":")
		base := path.Base(strings.TrimSpace(mod))
		for _, ext := range []string{".xz", ".zst", ".gz"} {
			base = strings.TrimSuffix(base, ext)
		}
		if base == "openvswitch.ko" {
			return true
		}
	}
	return false
}
