package netlabtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Readiness: a program is ready when it answers, not when it has started.
// Each wait tries again every pollInterval, each try bounded by tryTimeout,
// until it succeeds or its timeout passes; a Process's waits also stop as
// soon as the program has ended, since what it did not do by then it never
// will.
const (
	pollInterval = 50 * time.Millisecond
	tryTimeout   = 2 * time.Second
)

// WaitTCP waits until a TCP connection from the program's namespace to addr
// ("host:port"; a name of the lab resolves through its hosts file, e.g.
// "b:8080") succeeds, and closes it. It fails the test, with the end of the
// program's log, if the program ends first or timeout passes.
func (p *Process) WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	p.poll(t, "a TCP connection to "+addr, timeout, func(ctx context.Context) error {
		return p.lab.tryTCP(ctx, p.ns, addr)
	})
}

// WaitHTTP waits until a GET of rawURL from the program's namespace answers
// 200 OK (a name of the lab resolves through its hosts file, e.g.
// "http://b:8080/healthz"). It fails the test, with the end of the
// program's log, if the program ends first or timeout passes.
func (p *Process) WaitHTTP(t testing.TB, rawURL string, timeout time.Duration) {
	t.Helper()
	mustURL(t, rawURL)
	p.poll(t, "200 OK from GET "+rawURL, timeout, func(ctx context.Context) error {
		return p.lab.tryHTTP(ctx, p.ns, rawURL)
	})
}

// WaitLog waits until a line of the program's log matches the regular
// expression pattern, and returns the line. It fails the test, with the end
// of the log, if the program ends without writing one or timeout passes.
func (p *Process) WaitLog(t testing.TB, pattern string, timeout time.Duration) string {
	t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		t.Fatalf("netlabtest: WaitLog: %v", err)
	}
	var line string
	p.poll(t, fmt.Sprintf("a line of its log matching %q", pattern), timeout, func(context.Context) error {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if re.MatchString(l) {
				line = l
				return nil
			}
		}
		return fmt.Errorf("no line matches yet")
	})
	return line
}

// poll runs try until it succeeds; it fails the test when the program has
// ended and one more try fails, or when timeout passes.
func (p *Process) poll(t testing.TB, what string, timeout time.Duration, try func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// Looked at before the try: a try that follows the program's end
		// and fails means it will not come.
		ended := false
		select {
		case <-p.done:
			ended = true
		default:
		}
		err := tryOnce(deadline, try)
		switch {
		case err == nil:
			return
		case ended:
			t.Fatalf("netlabtest: %s: %s before %s (last try: %v); its log ends:\n%s", p.label, p.state(), what, err, p.tail())
		case !time.Now().Before(deadline):
			t.Fatalf("netlabtest: %s (%s): no %s within %v (last try: %v); its log ends:\n%s", p.label, p.state(), what, timeout, err, p.tail())
		}
		select {
		case <-p.done:
		case <-time.After(min(pollInterval, time.Until(deadline))):
		}
	}
}

// WaitTCP waits until a TCP connection from namespace ns to addr succeeds
// (a name of the lab resolves through its hosts file, e.g. "b:8080"), and
// closes it: for a service netlab runs (services: in the lab's file), or
// any listener of the lab. It fails the test if timeout passes first; the
// lab's teardown then shows the end of every service's log.
func (l *Lab) WaitTCP(t testing.TB, ns, addr string, timeout time.Duration) {
	t.Helper()
	l.poll(t, ns, "a TCP connection to "+addr, timeout, func(ctx context.Context) error {
		return l.tryTCP(ctx, ns, addr)
	})
}

// WaitHTTP waits until a GET of rawURL from namespace ns answers 200 OK (a
// name of the lab resolves through its hosts file). It fails the test if
// timeout passes first.
func (l *Lab) WaitHTTP(t testing.TB, ns, rawURL string, timeout time.Duration) {
	t.Helper()
	mustURL(t, rawURL)
	l.poll(t, ns, "200 OK from GET "+rawURL, timeout, func(ctx context.Context) error {
		return l.tryHTTP(ctx, ns, rawURL)
	})
}

func (l *Lab) poll(t testing.TB, ns, what string, timeout time.Duration, try func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := tryOnce(deadline, try)
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("netlabtest: from %s: no %s within %v (last try: %v)", l.NS(ns), what, timeout, err)
		}
		time.Sleep(min(pollInterval, time.Until(deadline)))
	}
}

// tryOnce runs one try, bounded by tryTimeout and the deadline.
func tryOnce(deadline time.Time, try func(ctx context.Context) error) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	ctx, cancelTry := context.WithTimeout(ctx, tryTimeout)
	defer cancelTry()
	return try(ctx)
}

func (l *Lab) tryTCP(ctx context.Context, ns, addr string) error {
	c, err := l.dial(ctx, ns, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func (l *Lab) tryHTTP(ctx context.Context, ns, rawURL string) error {
	tr := &http.Transport{
		// Never a proxy: the request is the lab's.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.dial(ctx, ns, network, addr)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", rawURL, resp.Status)
	}
	return nil
}

// mustURL fails the test for a URL no try could GET: waiting would only
// time out.
func mustURL(t testing.TB, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = fmt.Errorf("want http://HOST[:PORT]/... or https://")
	}
	if err != nil {
		t.Fatalf("netlabtest: WaitHTTP %q: %v", rawURL, err)
	}
}
