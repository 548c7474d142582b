package netlabtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// tailLines is how much of a log a failure shows: enough for the error
// and what led to it, little enough to read.
const tailLines = 50

// Logs returns the log of a service netlab runs in namespace ns
// (services: in the lab's file): the program's stdout and stderr and its
// supervisor's lines (started, ended, restarted and why). It panics if
// the lab has no such service: a test asking for it is wrong.
//
// Equivalent to: `netlab logs LAB NS/SERVICE`.
func (l *Lab) Logs(ns, service string) string {
	logs, err := l.eng.ServiceLogs(l.lab.Name, l.NS(ns), service)
	if err != nil {
		panic(fmt.Sprintf("netlabtest: %v", err))
	}
	b, err := os.ReadFile(logs[0].Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		panic(fmt.Sprintf("netlabtest: log of service %s/%s: %v", ns, service, err))
	}
	return string(b)
}

// logServices shows the end of every service's log, for a failed test.
func (l *Lab) logServices(t testing.TB) {
	t.Helper()
	if !l.hasServices() {
		return
	}
	logs, err := l.eng.ServiceLogs(l.lab.Name, "", "")
	if err != nil {
		t.Logf("netlabtest: the test failed; the services' logs: %v", err)
		return
	}
	for _, lg := range logs {
		ns := strings.TrimPrefix(lg.NS, l.prefix)
		t.Logf("netlabtest: the test failed: service %s/%s's log (netlab logs %s %s/%s) ends:\n%s", ns, lg.Name, l.lab.Name, ns, lg.Name, tailFile(lg.Path, tailLines))
	}
}

func (l *Lab) hasServices() bool {
	for _, ns := range l.lab.Namespaces {
		if len(ns.Services) > 0 {
			return true
		}
	}
	return false
}

// tailFile returns the last n lines of a file, indented, from its last
// 64 KiB at most: a chatty program's log may be large.
func tailFile(path string, n int) string {
	const most = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	defer f.Close()
	var from int64
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		from = fi.Size() - most
	}
	b, err := io.ReadAll(io.NewSectionReader(f, from, most))
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	if from > 0 {
		// Started within a line: drop its end.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return "  (empty)\n"
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
