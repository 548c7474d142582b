package ovs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// vswitchSchema is the OVS database schema shipped by openvswitch-common.
var vswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// Daemon names: the program, its pidfile (<name>.pid) and its unixctl socket
// (<name>.<pid>.ctl, the default under OVS_RUNDIR) share them.
const (
	vswitchd    = "ovs-vswitchd"
	ovsdbServer = "ovsdb-server"
)

// Files in the private run directory.
const (
	dbFile   = "conf.db"
	dbSock   = "db.sock"
	lockFile = "netlab-ovs.lock"
)

// Connect finds a running OVS: the system one first (a db socket at
// /var/run/openvswitch/db.sock or /run/openvswitch/db.sock that answers
// `ovs-vsctl show`, and a live ovs-vswitchd from its pidfile next to it), else
// netlab's private instance in the run directory if both of its daemons run
// and its database answers. It returns ErrNotRunning if neither runs.
// Connect never changes anything.
func Connect(opts ...Option) (*Client, error) {
	return connect(buildOptions(opts))
}

func connect(o options) (*Client, error) {
	for _, sock := range o.systemDBs {
		if c := probeSystem(o, sock); c != nil {
			return c, nil
		}
	}
	c := newClient(o, filepath.Join(o.runDir, dbSock), true)
	if c.privateRunning() && (!waitStarter(o.runDir, o.timeout) || c.privateRunning()) {
		return c, nil
	}
	return nil, ErrNotRunning
}

// waitStarter waits, bounded by d, while another netlab process holds the
// private run directory's lock (EnsureRunning starting the instance,
// StopPrivateIfIdle stopping it). Both daemons answer before ovs-vswitchd
// has applied the database and written the port types it supports
// (iface_types, which the starter's `ovs-vsctl init` waits for): a lab
// planned meanwhile took AF_XDP for missing, made system ports, and then
// found itself not converged once the types were there (eight labs brought
// up at once on a fresh machine). A shared lock, so concurrent callers do
// not wait for each other; none at all when the lock file cannot be opened
// (a reader without the right to it). It says whether it waited: the
// holder may have been stopping the instance, which the caller checks again.
func waitStarter(dir string, d time.Duration) (waited bool) {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	deadline := time.Now().Add(d)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return waited // the lock goes with the file
		}
		waited = true
		time.Sleep(5 * time.Millisecond)
	}
}

func probeSystem(o options, sock string) *Client {
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	c := newClient(o, sock, false)
	if _, alive := daemonPID(c.ovsDir, vswitchd); !alive {
		return nil
	}
	if !c.answers() {
		return nil
	}
	return c
}

// privateRunning reports whether both private daemons are alive and the
// database answers.
func (c *Client) privateRunning() bool {
	if _, ok := daemonPID(c.runDir, ovsdbServer); !ok {
		return false
	}
	if _, ok := daemonPID(c.runDir, vswitchd); !ok {
		return false
	}
	return c.answers()
}

// EnsureRunning is Connect, and if no OVS runs, starts netlab's private
// instance in the run directory, equivalent to (with
// OVS_RUNDIR=OVS_DBDIR=OVS_LOGDIR=DIR):
//
//	ovsdb-tool create DIR/conf.db /usr/share/openvswitch/vswitch.ovsschema   # if absent
//	ovsdb-server DIR/conf.db --remote=punix:DIR/db.sock --pidfile=DIR/ovsdb-server.pid \
//	    --log-file=DIR/ovsdb-server.log -vconsole:off --detach
//	ovs-vsctl --no-wait init
//	ovs-vswitchd unix:DIR/db.sock --pidfile=DIR/ovs-vswitchd.pid \
//	    --log-file=DIR/ovs-vswitchd.log -vconsole:off --detach
//	ovs-vsctl init   # returns once ovs-vswitchd has applied the database
//
// The unixctl sockets (<daemon>.<pid>.ctl) and the bridges' <bridge>.mgmt
// OpenFlow sockets land in DIR too. Concurrent callers (other netlab
// processes) are serialised by a flock on DIR/netlab-ovs.lock; a daemon that
// is already running is not started again. Call it from a goroutine whose
// thread is in the host network namespace: the daemons inherit it.
func EnsureRunning(opts ...Option) (*Client, error) {
	o := buildOptions(opts)
	c, err := connect(o)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, ErrNotRunning) {
		return nil, err
	}
	// root's alone, whatever an older netlab left: its sockets and database
	// are the labs' switch.
	if err := os.MkdirAll(o.runDir, 0o700); err != nil {
		return nil, fmt.Errorf("ovs: start private instance: %w", err)
	}
	if err := os.Chmod(o.runDir, 0o700); err != nil {
		return nil, fmt.Errorf("ovs: start private instance: %w", err)
	}
	unlock, err := lockDir(o.runDir, o.timeout)
	if err != nil {
		return nil, fmt.Errorf("ovs: start private instance: %w", err)
	}
	defer unlock()
	c = newClient(o, filepath.Join(o.runDir, dbSock), true)
	if c.privateRunning() { // another process started it while we waited
		return c, nil
	}
	if err := c.startPrivate(); err != nil {
		return nil, fmt.Errorf("ovs: start private instance in %s: %w", o.runDir, err)
	}
	return c, nil
}

func (c *Client) startPrivate() error {
	d := c.runDir
	if _, ok := daemonPID(d, vswitchd); !ok {
		if pid, cmdline, found := otherVSwitchd(); found {
			return fmt.Errorf("%w: pid %d (%s)", ErrOtherVSwitchd, pid, cmdline)
		}
	}
	db := filepath.Join(d, dbFile)
	if _, ok := daemonPID(d, ovsdbServer); !ok {
		if err := c.ensureDB(db); err != nil {
			return err
		}
	}
	if _, ok := daemonPID(d, ovsdbServer); !ok {
		if out, err := c.run(ovsdbServer, db,
			"--remote=punix:"+filepath.Join(d, dbSock),
			"--pidfile="+filepath.Join(d, ovsdbServer+".pid"),
			"--log-file="+filepath.Join(d, ovsdbServer+".log"),
			"-vconsole:off", "--detach"); err != nil {
			return fmt.Errorf("start %s: %w: %s", ovsdbServer, err, trim(out))
		}
	}
	if _, err := c.VSCtl("--no-wait", "init"); err != nil {
		return fmt.Errorf("ovs-vsctl --no-wait init: %w", err)
	}
	if _, ok := daemonPID(d, vswitchd); !ok {
		if out, err := c.run(vswitchd, c.info.DB,
			"--pidfile="+filepath.Join(d, vswitchd+".pid"),
			"--log-file="+filepath.Join(d, vswitchd+".log"),
			"-vconsole:off", "--detach"); err != nil {
			return fmt.Errorf("start %s: %w: %s", vswitchd, err, trim(out))
		}
	}
	// Without --no-wait, ovs-vsctl waits until ovs-vswitchd has caught up
	// with the database (cur_cfg == next_cfg): proof that it answers.
	if _, err := c.VSCtl("init"); err != nil {
		return fmt.Errorf("wait for %s: %w", vswitchd, err)
	}
	return nil
}

// ensureDB makes the private database when it is missing, or empty or
// unreadable: a run killed while making it (or a full disk) leaves such a
// file, and ovsdb-server then refuses to start ("cannot identify file
// type") for every lab until someone removes it. With no ovsdb-server
// running nothing holds it, and a file OVS cannot read holds no bridge it
// could still serve: it is made anew, with a warning. It is written under a
// temporary name and renamed, so a kill at any moment leaves either no
// database or a whole one.
// Equivalent to: `ovsdb-tool create DIR/conf.db.new SCHEMA && mv DIR/conf.db.new DIR/conf.db`.
func (c *Client) ensureDB(db string) error {
	fi, err := os.Stat(db)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("private database: %w", err)
	case fi.Size() > 0:
		if _, err := c.run("ovsdb-tool", "db-name", db); err == nil {
			return nil
		}
		fallthrough
	default:
		c.mu.Lock()
		c.warnings = append(c.warnings, fmt.Sprintf("netlab's private Open vSwitch database %s was empty or unreadable (%d bytes; an earlier run was killed while making it?): made anew", db, fi.Size()))
		c.mu.Unlock()
	}
	tmp := db + ".new"
	os.Remove(tmp)
	if out, err := c.run("ovsdb-tool", "create", tmp, vswitchSchema); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ovsdb-tool create %s: %w: %s", tmp, err, trim(out))
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("private database: %w", err)
	}
	return nil
}

// Warnings says what starting netlab's private instance worked around.
func (c *Client) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}

// StopPrivateIfUnused stops netlab's private instance when this client talks
// to it and no bridge is left in its database; it never stops a system OVS.
// Equivalent to:
//
//	ovs-appctl -t DIR/ovs-vswitchd.PID.ctl exit --cleanup
//	ovs-appctl -t DIR/ovsdb-server.PID.ctl exit
//
// after checking that each PID from the pidfile really is that daemon
// (/proc/PID/comm and exe). A daemon still alive after the timeout gets
// SIGTERM, then SIGKILL, by PID. Sockets and pidfiles are removed; conf.db
// and the logs stay. It reports whether it stopped the instance.
func (c *Client) StopPrivateIfUnused() (bool, error) {
	if !c.Info().Private {
		return false, nil
	}
	unlock, err := lockDir(c.runDir, c.timeout)
	if err != nil {
		return false, fmt.Errorf("ovs: stop private instance: %w", err)
	}
	defer unlock()
	brs, err := c.bridgeNames()
	if err != nil {
		return false, fmt.Errorf("ovs: stop private instance: list bridges: %w", err)
	}
	if len(brs) > 0 {
		return false, nil
	}
	// The connection goes before the daemon it talks to.
	c.Close()
	var errs []error
	// vswitchd first: --cleanup releases its datapath resources (the
	// ovs-netdev tap of the userspace datapath), which it needs the
	// database for.
	errs = append(errs, c.stopDaemon(vswitchd, "exit", "--cleanup"))
	errs = append(errs, c.stopDaemon(ovsdbServer, "exit"))
	if err := errors.Join(errs...); err != nil {
		return false, fmt.Errorf("ovs: stop private instance in %s: %w", c.runDir, err)
	}
	// The database goes too: it is empty, and a database left behind means
	// daemons that died with bridges in it (down then starts them to clean up).
	for _, pat := range []string{dbSock, "*.ctl", "*.pid", "*.mgmt", "*.snoop", "conf.db", "conf.db.new", ".conf.db.~lock~", ".conf.db.new.~lock~"} {
		files, _ := filepath.Glob(filepath.Join(c.runDir, pat))
		for _, f := range files {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	c.mu.Lock()
	c.info.Running = false
	c.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("ovs: stop private instance in %s: %w", c.runDir, err)
	}
	return true, nil
}

// stopDaemon asks the daemon to exit over its unixctl socket and waits for
// its PID to vanish; signals by PID are the fallback.
func (c *Client) stopDaemon(name string, exitArgs ...string) error {
	pid, ok := daemonPID(c.runDir, name)
	if !ok {
		return nil // not running (or the pidfile names another program)
	}
	ctl := filepath.Join(c.runDir, fmt.Sprintf("%s.%d.ctl", name, pid))
	_, aerr := c.appctl(append([]string{"-t", ctl}, exitArgs...)...)
	if waitGone(pid, name, c.timeout) {
		return nil
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !isDaemon(pid, name) {
			return nil
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s pid %d: %s: %w", name, pid, sig, err)
		}
		if waitGone(pid, name, 2*time.Second) {
			return nil
		}
	}
	return fmt.Errorf("%s pid %d still running (exit: %v)", name, pid, aerr)
}

// daemonPID reads dir/name.pid and reports whether that PID is a live
// process of that program.
func daemonPID(dir, name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, isDaemon(pid, name)
}

// isDaemon reports whether pid is a live (not zombie) process running the
// program name, by /proc/PID/comm and, when readable, the base name of
// /proc/PID/exe (Debian's /usr/sbin/ovs-vswitchd is an alternatives symlink
// to /usr/lib/openvswitch-switch/ovs-vswitchd, same base name).
func isDaemon(pid int, name string) bool {
	p := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(p + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != name {
		return false
	}
	if stat, err := os.ReadFile(p + "/stat"); err == nil {
		// "pid (comm) S ...": the state follows the last ')'.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	if exe, err := os.Readlink(p + "/exe"); err == nil {
		if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
			return false
		}
	}
	return true
}

// VSwitchdRunning says whether any ovs-vswitchd runs in this process's
// network namespace.
func VSwitchdRunning() bool {
	_, _, found := otherVSwitchd()
	return found
}

// otherVSwitchd finds a live ovs-vswitchd process in this process's network
// namespace (any: the caller has checked its own pidfile first). The clash
// is per network namespace: the datapath's ovs-netdev device lives in the
// daemon's, so the ovs-vswitchd of a sandbox (a network namespace of its
// own) never stands in the way of the machine's, nor the other way round.
func otherVSwitchd() (pid int, cmdline string, found bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, "", false
	}
	var ours unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &ours); err != nil {
		return 0, "", false
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !isDaemon(pid, vswitchd) {
			continue
		}
		var theirs unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &theirs) == nil && (theirs.Ino != ours.Ino || theirs.Dev != ours.Dev) {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		return pid, strings.Join(strings.Fields(strings.ReplaceAll(string(b), "\x00", " ")), " "), true
	}
	return 0, "", false
}

func waitGone(pid int, name string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !isDaemon(pid, name) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockDir takes an exclusive flock on dir/netlab-ovs.lock, waiting at most d.
// The descriptor is close-on-exec, so the daemons never inherit the lock.
func lockDir(dir string, d time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(d)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func trim(b []byte) string { return strings.TrimSpace(string(b)) }

// StopPrivateIfIdle stops netlab's private instance in the run directory
// when it has no bridge, even a half-started one (a crash during
// EnsureRunning can leave ovsdb-server without ovs-vswitchd). It never
// touches a system OVS, and returns whether it stopped anything.
func StopPrivateIfIdle(opts ...Option) (bool, error) {
	o := buildOptions(opts)
	c := newClient(o, filepath.Join(o.runDir, dbSock), true)
	defer c.Close()
	_, dbAlive := daemonPID(c.runDir, ovsdbServer)
	_, vsAlive := daemonPID(c.runDir, vswitchd)
	switch {
	case !dbAlive && !vsAlive:
		return false, nil
	case !dbAlive:
		// Without its database the daemon has no bridges we could lose.
		if err := c.stopDaemon(vswitchd, "exit", "--cleanup"); err != nil {
			return false, fmt.Errorf("ovs: stop private instance in %s: %w", c.runDir, err)
		}
		return true, nil
	}
	return c.StopPrivateIfUnused()
}
