// Package netlabtest is netlab as a Go test fixture: one call brings a lab up
// for a test, with a unique prefix so tests run in parallel, and takes it
// down when the test ends.
//
//	func TestClientServer(t *testing.T) {
//		t.Parallel()
//		lab := netlabtest.Up(t, "testdata/two-hosts.yaml")
//		lab.Exec(t, "blue", "ping", "-c1", "-W1", "red") // the lab's names resolve
//		err := lab.Do("red", func() error { return serve(ctx) })
//		srv := lab.Start(t, "red", serverBinary, "--listen", ":8080")
//		srv.WaitHTTP(t, "http://red:8080/", 5*time.Second)
//	}
//
// UpString and UpLab bring up a lab written in the test or built in Go.
// The programs of a lab (Command, Start, Exec, services:) run through the
// netlab binary: NETLAB_BIN, netlab on PATH, or the one BuildNetlab builds.
//
// Call Main from the package's TestMain and the whole test binary runs in a
// sandbox of its own: a network world apart from the machine's, where labs
// never meet a user's labs and, for a user without root, a user namespace
// of theirs that makes them root inside. Then `go test ./...` needs no sudo:
//
//	func TestMain(m *testing.M) { netlabtest.Main(m) }
//
// Without Main, Up needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and uses the
// machine's own network stack; without root the test is skipped, unless
// NETLAB_E2E=1, under which it fails: CI can never pass by skipping.
// NETLAB_KEEP=1 keeps a failed test's lab for inspection.
package netlabtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/supervise"
	"github.com/netlab-dev/netlab/topology"
)

// MainOption configures Main and Run.
type MainOption func(*mainOptions)

type mainOptions struct {
	onHost bool
	build  bool
}

// OnHost runs the tests on the machine's own network stack, as without
// Main: they need root then, and their labs share the machine with the
// user's (under random prefixes). NETLAB_TEST_ON_HOST=1 does the same from
// outside.
func OnHost() MainOption { return func(o *mainOptions) { o.onHost = true } }

// BuildNetlab makes sure the tests have a netlab binary, which runs the
// programs of a lab (Command, Start, Exec's view, services:, reflectors):
// when NETLAB_BIN is unset and no netlab is on PATH, Run builds the one of
// the fixture's own version (`CGO_ENABLED=0 go build github.com/netlab-dev/netlab/cmd/netlab`,
// as the test's module requires it; static, as make builds it) into a temporary directory before the
// tests, points NETLAB_BIN at it, and removes it after them. A build that
// fails fails the test binary.
func BuildNetlab() MainOption { return func(o *mainOptions) { o.build = true } }

// Main runs the test binary inside a fresh sandbox and exits with its
// status; call it from TestMain. It never returns. Code in TestMain before
// Main runs twice, outside and again inside; Run returns instead of exiting,
// for a TestMain with work to do after the tests.
//
// How: the binary starts itself again (Go's SysProcAttr) as the first
// process of new network, mount and PID namespaces, plus a user namespace
// mapping the caller to root when the caller is not root; that process sets
// up a private /run, /proc and /sys and runs the binary once more, where the
// tests run. When the binary ends, the kernel ends everything in the
// sandbox: labs, Open vSwitch, reflectors.
func Main(m *testing.M, opts ...MainOption) { os.Exit(Run(m, opts...)) }

// Run is Main that returns the exit status instead of exiting (0: the tests
// passed). Inside the sandbox (and with OnHost) it is m.Run().
func Run(m *testing.M, opts ...MainOption) int {
	var o mainOptions
	for _, fn := range opts {
		fn(&o)
	}
	// Built once, outside the sandbox: the run inside inherits NETLAB_BIN.
	if o.build && !InSandbox() {
		dir, err := buildNetlab()
		if err != nil {
			fmt.Fprintf(os.Stderr, "netlabtest: %v\n", err)
			return 1
		}
		if dir != "" {
			defer os.RemoveAll(dir)
		}
	}
	return sandbox.RunTests(m.Run, o.onHost, sandbox.WithDelegate(delegate)) // delegate.go
}

// buildNetlab builds netlab into a new directory and sets NETLAB_BIN, unless
// a netlab binary is there already; it returns the directory ("" for none).
func buildNetlab() (string, error) {
	if _, err := supervise.Binary(); err == nil {
		return "", nil
	}
	dir, err := os.MkdirTemp("", "netlabtest-bin-")
	if err == nil {
		// A lab's programs may run as other users (a service's user:).
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	bin := filepath.Join(dir, "netlab")
	build := exec.Command("go", "build", "-o", bin, "github.com/netlab-dev/netlab/cmd/netlab")
	// Static, as make builds it: each netlab command the tests run starts
	// without the dynamic loader (2 ms sooner), in the sandbox too.
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build netlab (BuildNetlab): %w", err)
	}
	os.Setenv("NETLAB_BIN", bin)
	return dir, nil
}

// InSandbox says whether the tests run inside a sandbox (Main's).
func InSandbox() bool { return sandbox.Inside() != "" }

// Option configures Up.
type Option func(*options)

type options struct {
	prefix string
	keep   bool
}

// WithPrefix sets the prefix instead of a random one (1 to 6 of [a-z0-9-]).
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithKeep keeps the lab when the test fails, and says how to enter and
// remove it. NETLAB_KEEP=1 does the same for every lab.
func WithKeep(keep bool) Option { return func(o *options) { o.keep = keep } }

// Lab is a lab brought up for one test.
type Lab struct {
	lab    *topology.Lab
	prefix string
	eng    *engine.Engine
	// kept is set by the teardown when it keeps the lab (NETLAB_KEEP).
	kept bool
}

// Up brings the topology file up under a unique prefix and registers its
// teardown with t.Cleanup. When the test failed, the teardown first logs the
// last lines of every service's log (services: in the file).
//
// Equivalent to: `netlab up --prefix P FILE`, and `netlab down` at the end.
func Up(t testing.TB, file string, opts ...Option) *Lab {
	t.Helper()
	RequireRoot(t)
	lab, err := topology.Load(file)
	if err != nil {
		t.Fatalf("netlabtest: %v", err)
	}
	return up(t, lab, file, opts)
}

// UpString is Up for a lab written in the test itself:
//
//	lab := netlabtest.UpString(t, `
//	name: duo
//	namespaces:
//	  a: {interfaces: {p2p: {peer: b/p2p, addresses: [10.9.0.1/30]}}}
//	  b: {interfaces: {p2p: {addresses: [10.9.0.2/30]}}}
//	`)
//
// Files placed from beside the lab (files: {PATH: {from: FILE}}) are read
// relative to the test's working directory, its package's directory under
// go test. Errors point into the text, as "inline lab of TestName:LINE:COL".
// The text is kept in a temporary file while the lab is up, where netlab
// reads it again as it does a lab's file (Status's drift, Impair).
func UpString(t testing.TB, text string, opts ...Option) *Lab {
	t.Helper()
	RequireRoot(t)
	return upText(t, "inline lab of "+t.Name(), []byte(text), false, opts)
}

// UpLab is Up for a lab built in Go: a *topology.Lab made field by field
// with what a file would say (Parse derives the rest: Interface.NS, Links,
// Bridge.Ports), or one Parse returned, perhaps changed. It is validated
// exactly as a file: topology.Format writes it as a lab file, which UpLab
// brings up as UpString does its text, so Status's drift, Impair, check
// and flows work as for a file. Its errors name the lab and the field, as
// "lab NAME built in TestName:LINE:COL: namespaces.a.interfaces.p2p.mtu:
// 20 is out of range 68..65535", and the test's log shows the text, its
// lines numbered. lab itself is not changed: a test may bring one lab up
// many times.
//
// Files placed from beside the lab (File.From without Content) are read
// relative to the test's working directory, as UpString's.
func UpLab(t testing.TB, lab *topology.Lab, opts ...Option) *Lab {
	t.Helper()
	RequireRoot(t)
	if lab == nil {
		t.Fatalf("netlabtest: UpLab: nil lab")
	}
	text, err := topology.Format(lab)
	if err != nil {
		t.Fatalf("netlabtest: UpLab: %v", err)
	}
	what := "lab " + lab.Name + " built in " + t.Name()
	if lab.Name == "" {
		what = "a lab built in " + t.Name()
	}
	return upText(t, what, text, true, opts)
}

// up brings lab up under the options' prefix and registers its teardown:
// Up's, UpString's and UpLab's one way. what names the lab in messages.
func up(t testing.TB, lab *topology.Lab, what string, opts []Option) *Lab {
	t.Helper()
	o := options{keep: os.Getenv("NETLAB_KEEP") == "1"}
	for _, fn := range opts {
		fn(&o)
	}
	if o.prefix == "" {
		o.prefix = randomPrefix()
	}
	if err := topology.ApplyPrefix(lab, o.prefix); err != nil {
		t.Fatalf("netlabtest: %v", err)
	}
	if users := engine.TUNUsers(lab); len(users) > 0 {
		if ok, why, fix := sandbox.TunUsable(); !ok {
			skipOrFail(t, fmt.Sprintf("netlabtest: %s needs /dev/net/tun: %s (fix: %s)", strings.Join(users, ", "), why, fix))
		}
	}
	l := &Lab{lab: lab, prefix: o.prefix, eng: engine.New()}
	t.Cleanup(func() {
		if t.Failed() {
			l.logServices(t)
		}
		if o.keep && t.Failed() {
			l.kept = true
			t.Logf("netlabtest: %s", keepHint(lab.Name, l.NS(firstNS(lab))))
			return
		}
		if _, err := l.eng.Down(lab.Name); err != nil {
			t.Errorf("netlabtest: down %s: %v", lab.Name, err)
		}
	})
	if _, err := l.eng.Up(lab, o.prefix); err != nil {
		t.Fatalf("netlabtest: up %s (prefix %s): %v", what, o.prefix, err)
	}
	return l
}

// keepHint says how to enter and remove a kept lab, and where it is.
func keepHint(lab, ns string) string {
	switch sb := sandbox.Inside(); {
	case sb == "":
		return fmt.Sprintf("keeping lab %s for inspection (NETLAB_KEEP):\n  enter:  ip netns exec %s bash\n  status: netlab status %s\n  remove: netlab down %s", lab, ns, lab, lab)
	case sb == sandbox.TestSandbox, strings.HasPrefix(sb, "test-") && os.Getenv("NETLAB_KEEP") != "1":
		// Main's own sandbox, or one netlab sandbox run made for these
		// tests (delegate.go), kept only with NETLAB_KEEP=1.
		return fmt.Sprintf("keeping lab %s, but in this test binary's own sandbox, which ends with it: set NETLAB_KEEP=1 in the environment to keep the sandbox too", lab)
	default:
		return fmt.Sprintf("keeping lab %s for inspection (NETLAB_KEEP), in sandbox %s:\n  enter:  netlab --sandbox %s exec %s %s -- bash\n  status: netlab --sandbox %s status %s\n  remove: netlab --sandbox %s down %s", lab, sb, sb, lab, ns, sb, lab, sb, lab)
	}
}

func firstNS(lab *topology.Lab) string {
	if len(lab.Namespaces) == 0 {
		return "host"
	}
	return lab.Namespaces[0].Name
}

// RequireRoot skips the test without root, or fails it under NETLAB_E2E=1.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	skipOrFail(t, "netlabtest: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), or netlabtest.Main in TestMain to run in a sandbox without root")
}

// skipOrFail skips a test this machine cannot run, or fails it under
// NETLAB_E2E=1, where skipping is not allowed.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("NETLAB_E2E") == "1" {
		t.Fatal(why + "; NETLAB_E2E=1 makes this a failure")
	}
	t.Skip(why + "; set NETLAB_E2E=1 to fail instead")
}

var prefixMu sync.Mutex

// randomPrefix is "x" and four random [a-z0-9] and "-": 36^4 labs apart.
func randomPrefix() string {
	prefixMu.Lock()
	defer prefixMu.Unlock()
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "x" + string(b) + "-"
}

// Name is the lab's name on the machine (with its prefix).
func (l *Lab) Name() string { return l.lab.Name }

// Prefix is the prefix of every machine-wide name of the lab.
func (l *Lab) Prefix() string { return l.prefix }

// NS returns the machine name of a namespace the file calls name ("host"
// stays "host").
func (l *Lab) NS(name string) string {
	if name == topology.Host || strings.HasPrefix(name, l.prefix) && l.lab.Namespace(name) != nil {
		return name
	}
	return l.prefix + name
}

// Addr returns the first address (IPv4 first) the file gives the interface
// ifname of namespace ns, without its prefix length. It panics if there is
// none: a test asking for it is wrong.
func (l *Lab) Addr(ns, ifname string) string {
	n := l.lab.Namespace(l.NS(ns))
	if n == nil {
		panic(fmt.Sprintf("netlabtest: lab %s has no namespace %s", l.lab.Name, ns))
	}
	for _, want6 := range []bool{false, true} {
		for _, i := range n.Interfaces {
			if i.Name != ifname && i.Name != l.prefix+ifname {
				continue
			}
			for _, a := range i.Addresses {
				if a.Addr().Is6() == want6 {
					return a.Addr().String()
				}
			}
		}
	}
	panic(fmt.Sprintf("netlabtest: %s/%s has no address in lab %s", ns, ifname, l.lab.Name))
}

// Exec runs a command inside a namespace and returns its combined output;
// it fails the test, showing the command and output, when the command
// fails. It runs as Command does, in the namespace's view, where the lab's
// names resolve (`ping b`); without a netlab binary, with `ip netns exec`
// (which also applies /etc/netns/<ns>), where they do not.
func (l *Lab) Exec(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	out, err := l.Run(ns, name, args...)
	if err != nil {
		hint := ""
		if _, berr := supervise.Binary(); berr != nil {
			hint = "\n(run with `ip netns exec`, where the lab's names do not resolve: no netlab binary; put it on PATH or set NETLAB_BIN)"
		}
		t.Fatalf("netlabtest: in %s: %s %s: %v\n%s%s", l.NS(ns), name, strings.Join(args, " "), err, out, hint)
	}
	return out
}

// Run is Exec without the test: it returns the output and the error.
func (l *Lab) Run(ns string, name string, args ...string) (string, error) {
	cmd := l.Command(ns, name, args...)
	if cmd.Err != nil {
		// No netlab binary: the network alone, as before there was a view.
		cmd = exec.Command("ip", append([]string{"netns", "exec", l.NS(ns), name}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Do runs fn on an OS thread inside the namespace. Sockets fn creates stay
// in the namespace after it returns; goroutines it starts do not run there.
func (l *Lab) Do(ns string, fn func() error) error {
	h, err := namespace.Open(l.NS(ns))
	if err != nil {
		return err
	}
	defer h.Close()
	return namespace.Do(h, fn)
}

// Listen opens a listener inside the namespace; use it from any goroutine.
func (l *Lab) Listen(ns, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket (udp) inside the namespace.
func (l *Lab) ListenPacket(ns, network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := l.Do(ns, func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// Dial connects from inside the namespace, with a timeout. A name in
// address is resolved as the lab's programs resolve it, through the lab's
// hosts file ("b:8080" is b's address); a name the lab does not have goes
// to the machine's resolver.
func (l *Lab) Dial(ns, network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.dial(ctx, ns, network, address)
}

// DialContext is Dial bounded by a context instead of a timeout: an
// http.Transport's DialContext for a client in the namespace,
//
//	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
//		return lab.DialContext(ctx, "client", network, addr)
//	}}
func (l *Lab) DialContext(ctx context.Context, ns, network, address string) (net.Conn, error) {
	return l.dial(ctx, ns, network, address)
}

// Ping checks that namespace from reaches to: an address, or a namespace
// name (its first interface's first address). It fails the test otherwise.
func (l *Lab) Ping(t testing.TB, from, to string) {
	t.Helper()
	addr := to
	if n := l.lab.Namespace(l.NS(to)); n != nil && net.ParseIP(to) == nil {
		if len(n.Interfaces) == 0 {
			t.Fatalf("netlabtest: namespace %s has no interface to ping", to)
		}
		addr = l.Addr(to, n.Interfaces[0].Name)
	}
	var out string
	var err error
	for try := 0; try < 3; try++ {
		if out, err = l.Run(from, "ping", "-c", "1", "-W", "2", addr); err == nil {
			return
		}
	}
	t.Fatalf("netlabtest: ping %s from %s: %v\n%s", addr, l.NS(from), err, out)
}

// Status observes the lab (as `netlab status` does).
func (l *Lab) Status() (*engine.LabStatus, error) { return l.eng.Status(l.lab.Name) }

// Topology is the lab as parsed, with its prefix applied.
func (l *Lab) Topology() *topology.Lab { return l.lab }
