// Package ovs is netlab's Open vSwitch driver: it finds (or starts) an OVS
// instance and ensures or deletes the bridges and ports a lab owns, marking
// them with external_ids:netlab-lab, and the lab's OpenFlow flows (marked by
// a cookie; see flows.go). It is the only package that imports
// github.com/digitalocean/go-openvswitch. Bridges, ports and their checks,
// observe and liveness speak the database's protocol on one kept
// connection (rpc.go, rpcports.go, jsonrpc.go); flows go through ovs-ofctl,
// and the private instance through its daemons and ovs-appctl, always with
// a timeout. A client whose programs a test fakes (WithExec) runs the
// command-line forms of everything.
package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	goovs "github.com/digitalocean/go-openvswitch/ovs"

	"github.com/netlab-dev/netlab/internal/state"
)

// DefaultRunDir is where netlab's private OVS instance lives when no system
// OVS runs: conf.db, db.sock, pidfiles, unixctl sockets, logs and the
// <bridge>.mgmt OpenFlow sockets.
const DefaultRunDir = "/run/netlab/ovs"

// DefaultTimeout bounds every ovs-vsctl/ovs-ofctl/ovs-appctl call.
const DefaultTimeout = 10 * time.Second

// systemDBs are the database sockets of a system OVS (Debian's
// openvswitch-switch uses /var/run/openvswitch, a symlink to /run).
var systemDBs = []string{"/var/run/openvswitch/db.sock", "/run/openvswitch/db.sock"}

// ErrNotRunning is returned by Connect when neither a system OVS nor
// netlab's private instance is running.
var ErrNotRunning = errors.New("ovs: no Open vSwitch running")

// ErrOtherVSwitchd is wrapped by EnsureRunning's error when it would start
// netlab's private ovs-vswitchd while another ovs-vswitchd (not the system
// one Connect looks for, e.g. a private instance in another run directory)
// already runs in the same network namespace: both would create the
// datapath's "ovs-netdev" (or "ovs-system") device there, and the second
// fails with "Device or resource busy", so none of its bridges would work.
var ErrOtherVSwitchd = errors.New("another ovs-vswitchd is running in this network namespace")

// ErrNotOwned is wrapped by every refusal to touch an OVS object (bridge or
// port) whose external_ids:netlab-lab names another lab or nobody.
var ErrNotOwned = errors.New("not owned by this lab")

// Option configures Connect and EnsureRunning.
type Option func(*options)

type options struct {
	runDir    string
	timeout   time.Duration
	exec      goovs.ExecFunc
	systemDBs []string
	xdpMode   string
}

// WithRunDir sets the directory of netlab's private OVS instance (default
// DefaultRunDir).
func WithRunDir(dir string) Option { return func(o *options) { o.runDir = dir } }

// WithTimeout bounds every ovs-vsctl/ovs-ofctl/ovs-appctl call (passed as
// their --timeout, rounded up to whole seconds) and the waits for daemons and
// bridge interfaces. Default DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithXDPMode sets the options:xdp-mode of the AF_XDP ports this client
// makes (default DefaultXDPMode). Tests use an invalid mode to make Open
// vSwitch fail to open AF_XDP ports for real.
func WithXDPMode(mode string) Option { return func(o *options) { o.xdpMode = mode } }

// WithExec replaces the function that runs OVS programs, e.g. with a fake in
// unit tests. It receives the complete argv (including --db and --timeout) but
// not the environment (OVS_RUNDIR etc.), which only the default runner sets.
// On success the default runner returns stdout; on failure stderr followed by
// stdout.
func WithExec(fn goovs.ExecFunc) Option { return func(o *options) { o.exec = fn } }

// withSystemDBs overrides the sockets probed for a system OVS; tests pass none
// so that they never talk to a system instance.
func withSystemDBs(socks ...string) Option {
	return func(o *options) { o.systemDBs = socks }
}

func buildOptions(opts []Option) options {
	o := options{runDir: DefaultRunDir, timeout: DefaultTimeout, systemDBs: systemDBs, xdpMode: DefaultXDPMode}
	for _, fn := range opts {
		fn(&o)
	}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	return o
}

// Client talks to one OVS instance: the system one or netlab's private one.
// Its methods are safe for concurrent use.
type Client struct {
	mu   sync.Mutex
	info state.OVSInfo
	// warnings say what starting the private instance worked around.
	warnings []string

	runDir  string   // private instance directory; "" for a system OVS
	ovsDir  string   // OVS_RUNDIR of the instance (for <bridge>.mgmt sockets)
	env     []string // extra environment for every OVS program
	timeout time.Duration
	xdpMode string         // options:xdp-mode of AF_XDP ports
	run     goovs.ExecFunc // runs a program: the seam
	faked   bool           // run is a test's: read the database through it too, not over the protocol
	ovs     *goovs.Client
	db      *dbConn // JSON-RPC connection to ovsdb-server, made on first use (rpc.go); under mu
	// sent counts the transactions sent (clientTransactSeq), and observed
	// is the answer to an observation that transaction observedAt carried
	// (waitCheckOFPorts with observe): the next observe takes it if no
	// transaction was sent after that one. Under mu.
	sent       uint64
	observed   []opResultOf[rawRow]
	observedAt uint64
}

// newClient builds a client for the database socket sock. private says it is
// netlab's own instance living in dir.
func newClient(o options, sock string, private bool) *Client {
	dir := filepath.Dir(sock)
	c := &Client{
		info:    state.OVSInfo{Running: true, Private: private, DB: "unix:" + sock, RunDir: dir},
		ovsDir:  dir,
		env:     []string{"OVS_RUNDIR=" + dir},
		timeout: o.timeout,
		xdpMode: o.xdpMode,
		run:     o.exec,
		faked:   o.exec != nil,
	}
	if private {
		c.runDir = dir
		c.env = append(c.env, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir)
	}
	if c.run == nil {
		c.run = c.shell
	}
	// One global flag only: go-openvswitch appends args to its shared flags
	// slice, which is race-free only while that slice has cap 1.
	c.ovs = goovs.New(goovs.Timeout(c.timeoutSeconds()), goovs.Exec(c.exec))
	return c
}

// Env is the environment that points the ovs-* tools at this instance:
// OVS_RUNDIR (and for netlab's private instance OVS_DBDIR and OVS_LOGDIR),
// so `ovs-vsctl`, `ovs-ofctl dump-flows BR` and `ovs-appctl` find its
// database, its bridges' management sockets and its daemons.
func (c *Client) Env() []string {
	return append([]string{}, c.env...)
}

// Info describes the instance this client talks to.
func (c *Client) Info() state.OVSInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

func (c *Client) timeoutSeconds() int {
	return max(1, int(math.Ceil(c.timeout.Seconds())))
}

func (c *Client) timeoutFlag() string { return fmt.Sprintf("--timeout=%d", c.timeoutSeconds()) }

// exec is the ExecFunc given to go-openvswitch and used by every raw command:
// it points ovs-vsctl at this client's database, then runs the program.
func (c *Client) exec(cmd string, args ...string) ([]byte, error) {
	if cmd == "ovs-vsctl" {
		args = append([]string{"--db=" + c.info.DB}, args...)
	}
	return c.run(cmd, args...)
}

// shell is the default runner: the program with the instance's environment,
// killed after the timeout plus a margin (the tools' own --timeout fires
// first). Stdout on success; stderr then stdout on failure.
func (c *Client) shell(cmd string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+2*time.Second)
	defer cancel()
	x := exec.CommandContext(ctx, cmd, args...)
	x.Env = append(os.Environ(), c.env...)
	// Detaching daemons hand their stdio to /dev/null; don't wait forever if
	// one does not.
	x.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	x.Stdout, x.Stderr = &stdout, &stderr
	err := x.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (killed after %s)", err, c.timeout+2*time.Second)
		}
		out := bytes.TrimSpace(stderr.Bytes())
		if so := bytes.TrimSpace(stdout.Bytes()); len(so) > 0 {
			out = append(append(out, '\n'), so...)
		}
		return out, err
	}
	return stdout.Bytes(), nil
}

// raw runs an OVS program through exec with the timeout flag and returns a
// *goovs.Error (like go-openvswitch does) on failure, so that callers can
// classify errors from both paths the same way.
func (c *Client) raw(cmd string, args ...string) ([]byte, error) {
	out, err := c.exec(cmd, append([]string{c.timeoutFlag()}, args...)...)
	if err != nil {
		return nil, &goovs.Error{Out: bytes.TrimSpace(out), Err: err}
	}
	return out, nil
}

// VSCtl runs ovs-vsctl against this client's database with the timeout.
// Equivalent to: `ovs-vsctl --db=unix:SOCK --timeout=N ARGS...`.
func (c *Client) VSCtl(args ...string) ([]byte, error) {
	return c.raw("ovs-vsctl", args...)
}

// OFCtl runs ovs-ofctl with the timeout and, by default, OVS_RUNDIR set to
// the instance's run directory so that a bridge name finds its
// <bridge>.mgmt socket. Equivalent to:
// `OVS_RUNDIR=DIR ovs-ofctl --timeout=N ARGS...`.
//
// A bridge the database has but ovs-vswitchd has not made yet (a run killed
// right after adding it leaves ovs-vsctl waiting for the daemon, and the
// next run may get there first) has no management socket yet: ovs-ofctl
// says "is not a bridge or a socket". Then OFCtl waits for the daemon, up to
// the timeout; for a bridge the database lacks, it fails at once.
func (c *Client) OFCtl(args ...string) ([]byte, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		out, err := c.raw("ovs-ofctl", args...)
		br, notYet := notABridge(err)
		if !notYet || time.Now().After(deadline) {
			return out, err
		}
		if _, verr := c.VSCtl("br-exists", br); verr != nil {
			return out, err // not in the database either: really no bridge
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notABridge reads ovs-ofctl's "BR is not a bridge or a socket".
func notABridge(err error) (bridge string, ok bool) {
	if err == nil {
		return "", false
	}
	out := errOut(err)
	i := strings.Index(out, " is not a bridge or a socket")
	if i < 0 {
		return "", false
	}
	f := strings.Fields(out[:i])
	if len(f) == 0 {
		return "", false
	}
	return f[len(f)-1], true
}

// appctl runs ovs-appctl. Equivalent to: `ovs-appctl --timeout=N ARGS...`.
func (c *Client) appctl(args ...string) ([]byte, error) {
	return c.raw("ovs-appctl", args...)
}

// errOut returns the program output carried by err (stderr first), if any.
func errOut(err error) string {
	var oe *goovs.Error
	if errors.As(err, &oe) {
		return string(oe.Out)
	}
	return ""
}
