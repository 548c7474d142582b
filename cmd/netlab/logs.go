package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/engine"
)

// logs: netlab logs LAB [NS[/SERVICE]] [-f] prints the logs of a lab's
// services: what each program wrote, and what its supervisor said (started,
// ended, restarted). Several logs are printed one after the other, each
// line behind NS/SERVICE; -f then follows them all until Ctrl-C.
func (a *app) logs(args []string) int {
	fs := a.flags("logs", "LAB [NS[/SERVICE]] [-f]")
	follow := fs.Bool("f", false, "follow the logs until Ctrl-C (also --follow)")
	fs.BoolVar(follow, "follow", false, "follow the logs until Ctrl-C")
	pos, code, ok := positional(fs, args, 1, 2)
	if !ok {
		return code
	}
	var ns, service string
	if len(pos) == 2 {
		ns, service, _ = strings.Cut(pos[1], "/")
		if ns == "" || strings.Contains(service, "/") {
			fs.Usage()
			return exitUsage
		}
	}
	if a.sandbox != "" {
		return a.enter("logs", args)
	}
	name, code := a.labName(pos[0], "")
	if name == "" {
		return code
	}
	logs, err := a.engine(nil).ServiceLogs(name, ns, service)
	if err != nil {
		return a.fail("logs", err)
	}
	prefix := func(l engine.ServiceLog) string {
		if len(logs) == 1 {
			return ""
		}
		return l.NS + "/" + l.Name + " | "
	}
	offsets := make([]int64, len(logs))
	for i, l := range logs {
		n, err := copyLines(a.stdout, l.Path, 0, prefix(l))
		if err != nil {
			return a.fail("logs", err)
		}
		offsets[i] = n
	}
	if !*follow {
		return exitOK
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stop)
	for {
		select {
		case <-stop:
			return exitOK
		case <-time.After(200 * time.Millisecond):
		}
		for i, l := range logs {
			n, err := copyLines(a.stdout, l.Path, offsets[i], prefix(l))
			if err != nil {
				continue // a service stopped and its log went with the lab
			}
			offsets[i] = n
		}
	}
}

// copyLines writes the whole lines of path from offset on, each behind
// prefix, and returns the offset after the last one.
func copyLines(w io.Writer, path string, offset int64, prefix string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return offset, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return offset, nil // a partial line waits for its end
		}
		offset += int64(len(line))
		fmt.Fprint(w, prefix+line)
	}
}
