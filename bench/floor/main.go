// Command floor makes (up) and removes (down) the star lab of bench/star as
// directly as the kernel allows, with netlab's markers and sysctls: the floor
// netlab's own up and down are measured against in `make bench`.
//
// Up, per namespace, on a worker thread that stays locked (no thread is made
// per namespace; it switches back to the host once per bridge port, to turn
// the port's IPv6 off): unshare(CLONE_NEWNET) and a bind mount on
// /run/netns/NAME; a netlink socket opened there; lo up with its marker in
// one message; netlab's six sysctls written (through a proc of its own,
// made afresh every 42 namespaces, as netlab does); one RTM_NEWLINK making eth0
// (index 2, the first after lo) with its peer already in the host namespace
// in an interface group; the host end up with its marker (and master, on a
// Linux bridge) in one message, once its IPv6 is off (as netlab's bridge
// ports); eth0's address; eth0 up with its marker in one
// message; on Open vSwitch tx checksum offload off on both ends (ioctls on
// sockets of each namespace, no thread switch). Then, on Open vSwitch, every
// port in one database transaction with netlab's external_ids and
// ofport_request, waited for as ovs-vsctl waits (cur_cfg). The bridge comes
// first: a Linux bridge in the same group, or one OVS transaction.
//
// Down: on Open vSwitch the bridge's deletion is committed first; every host
// link goes in one RTM_DELLINK of the group (the namespace ends with them);
// the namespaces are unmounted and their files removed; then the wait for
// ovs-vswitchd and the bridge's device.
//
// Names are bench/star's under -prefix: bridge PREFIXbr (PREFIXbr1.. with
// -bridges), namespaces PREFIXh001.., host ends PREFIXp001.., eth0
// 10.77.x.y/16. Markers are netlab's for lab -lab. With -bridge none the
// namespaces are bare (lo, sysctls, marker).
//
//	floor -n 100 -bridge linux -prefix bn1- -lab bn1-star-lx-100 up
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/state"
)

// group is the interface group of every host link the floor makes ("NL" and
// "fl"): down deletes them in one request.
const group = 0x4e4c666c

// sysctls are the six netlab writes in every lab namespace
// (topology.DefaultSysctls).
var sysctls = []struct{ key, value string }{
	{"net/ipv4/ip_forward", "0"},
	{"net/ipv6/conf/all/forwarding", "0"},
	{"net/ipv4/conf/all/rp_filter", "0"},
	{"net/ipv4/conf/default/rp_filter", "0"},
	{"net/ipv6/conf/all/accept_dad", "0"},
	{"net/ipv6/conf/default/accept_dad", "0"},
}

type config struct {
	n       int
	bridges int
	bridge  string
	prefix  string
	lab     string
	workers int
	db      string
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 10, "namespaces")
	flag.StringVar(&c.bridge, "bridge", "linux", "linux | ovs | none")
	flag.IntVar(&c.bridges, "bridges", 1, "bridges the namespaces are spread over")
	flag.StringVar(&c.prefix, "prefix", "", "name prefix")
	flag.StringVar(&c.lab, "lab", "", "lab name of the markers (default PREFIXstar)")
	flag.IntVar(&c.workers, "workers", 1, "worker threads making namespaces")
	flag.StringVar(&c.db, "db", "", "ovsdb-server socket (default: the system one, else netlab's private one)")
	flag.Parse()
	if flag.NArg() != 1 || c.n < 1 || c.n > 60000 || (c.bridge != "linux" && c.bridge != "ovs" && c.bridge != "none") || c.workers < 1 ||
		c.bridges < 1 || c.bridges > c.n {
		fmt.Fprintln(os.Stderr, "usage: floor -n N -bridge linux|ovs|none [-bridges B] [-prefix P] [-lab LAB] [-workers W] up|down")
		os.Exit(2)
	}
	if c.lab == "" {
		c.lab = c.prefix + "star"
	}
	if c.bridge == "ovs" && c.db == "" {
		for _, s := range []string{"/run/openvswitch/db.sock", "/var/run/openvswitch/db.sock", "/run/netlab/ovs/db.sock"} {
			if _, err := os.Stat(s); err == nil {
				c.db = s
				break
			}
		}
		if c.db == "" {
			fatal(errors.New("no Open vSwitch runs"))
		}
	}
	var err error
	switch flag.Arg(0) {
	case "up":
		err = c.up()
	case "down":
		err = c.down()
	default:
		err = fmt.Errorf("%q: want up or down", flag.Arg(0))
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

func (c *config) ns(i int) string   { return fmt.Sprintf("%sh%03d", c.prefix, i) }
func (c *config) port(i int) string { return fmt.Sprintf("%sp%03d", c.prefix, i) }

// br is bridge b's name (bench/star's BridgeName).
func (c *config) br(b int) string {
	if c.bridges == 1 {
		return c.prefix + "br"
	}
	return fmt.Sprintf("%sbr%d", c.prefix, b)
}

// bridgeOf is the bridge namespace i is on (bench/star's BridgeOf).
func (c *config) bridgeOf(i int) int {
	per := (c.n + c.bridges - 1) / c.bridges
	return (i-1)/per + 1
}

// addr is bench/star's address of namespace i.
func addr(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("10.77.%d.%d/16", i/250, i%250+1))
}

func (c *config) up() error {
	host, err := openNL()
	if err != nil {
		return err
	}
	defer host.close()
	masters := make([]int32, c.bridges+1)
	var db *ovsdb
	for b := 1; b <= c.bridges; b++ {
		switch c.bridge {
		case "linux":
			if err := host.addBridge(c.br(b), state.LinkAlias(c.lab, "host", c.br(b)), group); err != nil {
				return fmt.Errorf("bridge: %w", err)
			}
			ifi, err := net.InterfaceByName(c.br(b))
			if err != nil {
				return err
			}
			masters[b] = int32(ifi.Index)
		case "ovs":
			if db == nil {
				if db, err = dialOVSDB(c.db); err != nil {
					return err
				}
				defer db.close()
			}
			if err := c.ovsBridge(db, c.br(b)); err != nil {
				return fmt.Errorf("bridge: %w", err)
			}
		}
	}
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		return err
	}
	hostNS, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(hostNS)

	var wg sync.WaitGroup
	errs := make([]error, c.workers)
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Never unlocked: the thread ends in a lab namespace and the
			// runtime discards it with the goroutine.
			runtime.LockOSThread()
			hs, err := openNL()
			if err != nil {
				errs[w] = err
				return
			}
			defer hs.close()
			proc := &procRoot{fd: -1}
			defer proc.close()
			for i := w + 1; i <= c.n; i += c.workers {
				if err := proc.next(); err != nil {
					errs[w] = err
					return
				}
				if err := c.makeNamespace(i, hs, hostNS, masters[c.bridgeOf(i)], proc.fd); err != nil {
					errs[w] = fmt.Errorf("%s: %w", c.ns(i), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if db != nil {
		return c.ovsPorts(db)
	}
	return nil
}

// makeNamespace makes namespace i and its veth; the calling thread ends in it.
func (c *config) makeNamespace(i int, host *nlSock, hostNS int, master int32, proc int) error {
	name := c.ns(i)
	path := filepath.Join("/run/netns", name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	s, err := openNL()
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.setLink(1, "", state.NamespaceAlias(c.lab), true, 0); err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	for _, sc := range sysctls {
		if err := writeFile(proc, "sys/"+sc.key, sc.value); err != nil {
			return err
		}
	}
	if c.bridge == "none" {
		return nil
	}
	port := c.port(i)
	if err := s.addVeth("eth0", 2, port, hostNS, group); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	// IPv6 off on the port before it goes up, as netlab does (a sysctl
	// acts on the namespace of the thread that opens it): back in the host,
	// where the next namespace is made from anyway.
	if err := unix.Setns(hostNS, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns host: %w", err)
	}
	if err := writeFile(proc, "sys/net/ipv6/conf/"+port+"/disable_ipv6", "1"); err != nil {
		return err
	}
	if err := host.setLink(0, port, state.LinkAlias(c.lab, "host", port), true, master); err != nil {
		return fmt.Errorf("%s: %w", port, err)
	}
	if err := s.addAddr(2, addr(i)); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if err := s.setLink(2, "", state.LinkAlias(c.lab, name, "eth0"), true, 0); err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	if c.bridge == "ovs" {
		// The ioctl acts in the namespace of the socket it goes through.
		if err := txOff(s.fd, "eth0"); err != nil {
			return fmt.Errorf("eth0: %w", err)
		}
		if err := txOff(host.fd, port); err != nil {
			return fmt.Errorf("%s: %w", port, err)
		}
	}
	return nil
}

// procNamespaces is how many namespaces write their sysctls through one
// proc mount (6 each: netlab's refresh after 256 opens).
const procNamespaces = 42

// procRoot is a worker's proc filesystem for sysctls, mounted nowhere
// and made afresh every procNamespaces namespaces, as netlab opens them
// (internal/kernel/procsys.go): in the machine's /proc every lookup walks
// a dentry per namespace that ever looked the key up, and the floor would
// be no floor at thousands of namespaces.
type procRoot struct{ fd, used int }

// next makes the proc the next namespace writes through.
func (p *procRoot) next() error {
	if p.fd >= 0 && p.used < procNamespaces {
		p.used++
		return nil
	}
	p.close()
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen proc: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return fmt.Errorf("fsconfig proc: %w", err)
	}
	if p.fd, err = unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0); err != nil {
		return fmt.Errorf("fsmount proc: %w", err)
	}
	p.used = 1
	return nil
}

func (p *procRoot) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

// writeFile writes value to path under the directory dir.
func writeFile(dir int, path, value string) error {
	fd, err := unix.Openat(dir, path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// txOff turns tx checksum offload off: SIOCETHTOOL ETHTOOL_STXCSUM.
func txOff(fd int, name string) error {
	v := struct{ cmd, data uint32 }{unix.ETHTOOL_STXCSUM, 0}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(uintptr(0))]byte
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return fmt.Errorf("tx off: %w", errno)
	}
	return nil
}

// ovsBridge adds the bridge as netlab does (datapath netdev, fail mode
// standalone, its protocols and marker) and waits for its device.
func (c *config) ovsBridge(db *ovsdb, br string) error {
	ops := []op{
		{"op": "insert", "table": "Interface", "row": op{"name": br, "type": "internal"}, "uuid-name": "bri"},
		{"op": "insert", "table": "Port", "row": op{"name": br, "interfaces": []any{"named-uuid", "bri"}}, "uuid-name": "brp"},
		{"op": "insert", "table": "Bridge", "uuid-name": "br", "row": op{
			"name": br, "ports": []any{"named-uuid", "brp"}, "datapath_type": "netdev", "fail_mode": "standalone",
			"external_ids": omap(state.OVSLabKey, c.lab),
			"protocols":    []any{"set", []string{"OpenFlow10", "OpenFlow13", "OpenFlow14"}}}},
		{"op": "mutate", "table": "Open_vSwitch", "where": where(), "mutations": []any{[]any{"bridges", "insert", []any{"named-uuid", "br"}}}},
	}
	res, err := db.transact(append(ops, nextCfgOps()...)...)
	if err != nil {
		return err
	}
	next, err := nextCfgOf(res)
	if err != nil {
		return err
	}
	if err := db.waitCfg(next); err != nil {
		return err
	}
	return waitSys(br, true)
}

// ovsPorts adds every port in one transaction and waits for ovs-vswitchd.
func (c *config) ovsPorts(db *ovsdb) error {
	var ops []op
	ports := make([][]any, c.bridges+1)
	for i := 1; i <= c.n; i++ {
		p := c.port(i)
		ops = append(ops,
			op{"op": "insert", "table": "Interface", "uuid-name": "i" + strconv.Itoa(i),
				"row": op{"name": p, "type": "system", "ofport_request": i}},
			op{"op": "insert", "table": "Port", "uuid-name": "p" + strconv.Itoa(i),
				"row": op{"name": p, "interfaces": []any{"named-uuid", "i" + strconv.Itoa(i)}, "external_ids": omap(state.OVSLabKey, c.lab)}})
		b := c.bridgeOf(i)
		ports[b] = append(ports[b], []any{"named-uuid", "p" + strconv.Itoa(i)})
	}
	for b := 1; b <= c.bridges; b++ {
		ops = append(ops, op{"op": "mutate", "table": "Bridge", "where": where([]any{"name", "==", c.br(b)}),
			"mutations": []any{[]any{"ports", "insert", []any{"set", ports[b]}}}})
	}
	res, err := db.transact(append(ops, nextCfgOps()...)...)
	if err != nil {
		return err
	}
	next, err := nextCfgOf(res)
	if err != nil {
		return err
	}
	return db.waitCfg(next)
}

func (c *config) down() error {
	var wait func() error
	if c.bridge == "ovs" {
		db, err := dialOVSDB(c.db)
		if err != nil {
			return err
		}
		defer db.close()
		var uuids []any
		for b := 1; b <= c.bridges; b++ {
			res, err := db.transact(op{"op": "select", "table": "Bridge", "where": where([]any{"name", "==", c.br(b)}), "columns": []string{"_uuid"}})
			if err != nil {
				return err
			}
			if rows, _ := res[0]["rows"].([]any); len(rows) == 1 {
				uuids = append(uuids, rows[0].(map[string]any)["_uuid"])
			}
		}
		if len(uuids) > 0 {
			res, err := db.transact(append([]op{{"op": "mutate", "table": "Open_vSwitch", "where": where(),
				"mutations": []any{[]any{"bridges", "delete", []any{"set", uuids}}}}}, nextCfgOps()...)...)
			if err != nil {
				return err
			}
			next, err := nextCfgOf(res)
			if err != nil {
				return err
			}
			wait = func() error {
				if err := db.waitCfg(next); err != nil {
					return err
				}
				for b := 1; b <= c.bridges; b++ {
					if err := waitSys(c.br(b), false); err != nil {
						return err
					}
				}
				return nil
			}
		}
	}
	host, err := openNL()
	if err != nil {
		return err
	}
	defer host.close()
	if err := host.delGroup(group); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete group: %w", err)
	}
	for i := 1; i <= c.n; i++ {
		path := filepath.Join("/run/netns", c.ns(i))
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if wait != nil {
		return wait()
	}
	return nil
}

// waitSys waits for a host device to appear or go (as netlab does for an
// OVS bridge's own port).
func waitSys(name string, present bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := os.Lstat("/sys/class/net/" + name)
		if (err == nil) == present {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s: present=%v not reached", name, present)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
