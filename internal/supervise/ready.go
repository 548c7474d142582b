package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/topology"
)

// probeTimeout bounds one run of a command probe.
const probeTimeout = 5 * time.Second

// Ready says whether the service's probe passes now, and what it saw. A
// service without a probe is ready while its program runs.
func (s *Supervisor) Ready(spec service.Spec, r *topology.Ready) (bool, string) {
	base := s.serviceBase(spec.NS, spec.Name)
	st, err := service.ReadState(base)
	if err != nil || st.PID == 0 {
		return false, "not running"
	}
	switch {
	case r == nil:
		return true, "running"
	case r.TCP != 0:
		return bound(spec.NS, "tcp", r.TCP)
	case r.UDP != 0:
		return bound(spec.NS, "udp", r.UDP)
	case r.Log != "":
		return logMatches(base+".log", st.LogFrom, r.Log)
	case len(r.Command) > 0:
		return s.probeCommand(spec, r.Command)
	}
	return true, "running"
}

// WaitReady waits until the service is ready, its supervisor has ended, or
// the timeout; the error says which, with the end of its log.
func (s *Supervisor) WaitReady(spec service.Spec, r *topology.Ready, timeout time.Duration) error {
	base := s.serviceBase(spec.NS, spec.Name)
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := s.Ready(spec, r)
		if ok {
			return nil
		}
		last = why
		if st, err := service.ReadState(base); err == nil && st.Restarts >= 3 && st.Exit != "" {
			return fmt.Errorf("service %s/%s keeps ending before it is ready (%s, started %d times): %s", spec.NS, spec.Name, st.Exit, st.Restarts+1, Tail(base+".log", 20))
		}
		if _, alive := s.liveSupervisor(base); !alive {
			return fmt.Errorf("service %s/%s ended before it was ready (%s): %s", spec.NS, spec.Name, last, Tail(base+".log", 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s/%s not ready within %s (%s): %s", spec.NS, spec.Name, timeout, last, Tail(base+".log", 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bound says whether a socket of the protocol listens on (TCP) or is bound
// to (UDP) the port in the namespace, from its /proc/net tables.
//
// Equivalent to: `ip netns exec NS ss -ltn sport = :PORT` (-u for UDP).
func bound(ns, proto string, port int) (bool, string) {
	h, err := namespace.Open(ns)
	if err != nil {
		return false, err.Error()
	}
	defer h.Close()
	found := false
	err = namespace.Do(h, func() error {
		for _, table := range []string{proto, proto + "6"} {
			b, err := os.ReadFile("/proc/thread-self/net/" + table)
			if err != nil {
				continue
			}
			if socketOn(string(b), proto, port) {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		return false, err.Error()
	}
	if found {
		return true, fmt.Sprintf("%s port %d bound", proto, port)
	}
	return false, fmt.Sprintf("nothing on %s port %d yet", proto, port)
}

// socketOn reads a /proc/net/{tcp,udp}[6] table: is a socket on the port,
// listening for TCP?
func socketOn(table, proto string, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[1], want) {
			continue
		}
		if proto == "udp" || f[3] == "0A" { // TCP_LISTEN
			return true
		}
	}
	return false
}

// logMatches says whether a line of the log since from matches.
func logMatches(path string, from int64, expr string) (bool, string) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return false, err.Error()
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err.Error()
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false, err.Error()
	}
	match, found := "", false
	err = eachLine(f, 1<<20, func(line string) bool {
		match, found = line, re.MatchString(line)
		return !found
	})
	if err != nil {
		return false, err.Error()
	}
	if found {
		return true, "log: " + match
	}
	return false, "no line of the log matches " + strconv.Quote(expr) + " yet"
}

// eachLine calls fn with each line of r, without its end of line, until fn
// returns false. A line longer than limit is cut to limit: unlike a
// bufio.Scanner, which stops at such a line, the lines after it (a program's
// binary dump, a progress bar redrawn with \r) are still read.
func eachLine(r io.Reader, limit int, fn func(line string) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) < limit {
			line = append(line, chunk[:min(len(chunk), limit-len(line))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // the same line goes on
		}
		if len(chunk) > 0 || len(line) > 0 {
			text := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
			if !fn(text) {
				return nil
			}
		}
		line = line[:0]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// probeCommand runs a probe command in the service's view.
func (s *Supervisor) probeCommand(spec service.Spec, argv []string) (bool, string) {
	bin, err := Binary()
	if err != nil {
		return false, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"view-exec", s.ServiceSpecPath(spec.NS, spec.Name), "--"}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = msg[len(msg)-200:]
		}
		return false, fmt.Sprintf("%s: %v %s", strings.Join(argv, " "), err, msg)
	}
	return true, strings.Join(argv, " ") + " succeeded"
}
