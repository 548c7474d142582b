package netlabtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/supervise"
)

// Command returns a command that runs name with args inside namespace ns,
// in the view its programs and the lab's services have: the namespace's
// network, /sys and /etc/netns/<ns> as `ip netns exec` gives them, the lab's
// hosts file as /etc/hosts (so `ping b` and `curl http://b:8080/` reach the
// lab's b), and the namespace's files and private directories. Set its
// streams, Env and Dir, and run it, as any exec.Cmd; its exit status and
// signals are the program's own.
//
// It runs the netlab binary (NETLAB_BIN, or netlab on PATH), which sets up
// the view and becomes the program: cmd.Path is netlab, but the process
// started is the program. Without a netlab binary, Start, Run and Output
// return an error saying so (cmd.Err).
//
// Equivalent to: `netlab exec LAB NS -- NAME ARGS...`.
func (l *Lab) Command(ns, name string, args ...string) *exec.Cmd {
	bin, err := supervise.Binary()
	cmd := exec.Command(bin, append([]string{"exec", l.lab.Name, l.NS(ns), "--", name}, args...)...)
	if err != nil {
		cmd.Err = fmt.Errorf("netlabtest: %s in %s: %w", name, l.NS(ns), err)
	}
	// The fixture's labs are where its engine keeps them: on this
	// machine's (or this sandbox's) stack, under the default state root.
	// netlab would look in another sandbox or root if these said so.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NETLAB_SANDBOX=") || strings.HasPrefix(kv, "NETLAB_ROOT=")
	})
	return cmd
}

// lookup returns the addresses the lab's hosts file gives name, in the
// file's order, as a program in the lab's namespaces would resolve it; none
// for a name the file does not have.
func (l *Lab) lookup(name string) []netip.Addr {
	f, err := os.Open(l.eng.HostsFile(l.lab.Name))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []netip.Addr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || !slices.Contains(fields[1:], name) {
			continue
		}
		if a, err := netip.ParseAddr(fields[0]); err == nil && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// resolve turns "NAME:PORT" into the addresses the lab's hosts file gives
// NAME (those of the network's family for tcp4, udp6...). An address, or a
// name the lab does not have, stays as it is: the machine's resolver has it.
func (l *Lab) resolve(network, address string) []string {
	host, port, err := net.SplitHostPort(address)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return []string{address}
	}
	var out []string
	for _, a := range l.lookup(host) {
		if strings.HasSuffix(network, "4") && !a.Is4() || strings.HasSuffix(network, "6") && !a.Is6() {
			continue
		}
		out = append(out, net.JoinHostPort(a.String(), port))
	}
	if len(out) == 0 {
		return []string{address}
	}
	return out
}

// dial connects from inside namespace ns, a name of the lab resolved
// through its hosts file; each of its addresses is tried in turn with an
// equal part of the time left, as Go's dialer does with a name's addresses.
func (l *Lab) dial(ctx context.Context, ns, network, address string) (net.Conn, error) {
	addrs := l.resolve(network, address)
	var c net.Conn
	err := l.Do(ns, func() error {
		var d net.Dialer
		var errs []error
		for i, a := range addrs {
			actx, cancel := ctx, context.CancelFunc(func() {})
			if dl, ok := ctx.Deadline(); ok {
				actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(addrs)-i))
			}
			conn, err := d.DialContext(actx, network, a)
			cancel()
			if err == nil {
				c = conn
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	return c, err
}
