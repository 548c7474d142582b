package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A world is a throwaway machine for one contender's measurement: a network
// namespace, a mount namespace with a private /run and a sysfs of its own,
// and a PID namespace, made by unshare(1) around this program run as its
// agent (-world-agent). Namespaces, links, Open vSwitch (started there
// when needed) and journals live and die with it: nothing another session
// does on the machine is in it, and nothing of it outlives it. The driver
// sends the agent commands to run and time, one at a time, as JSON lines.
type world struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	in    *json.Encoder
	out   *bufio.Scanner
}

// worldRequest is one command for the agent: argv run with env added, or
// (Residue set) a look for what is left named with that prefix.
type worldRequest struct {
	Argv    []string `json:"argv,omitempty"`
	Env     []string `json:"env,omitempty"`
	Residue string   `json:"residue,omitempty"`
}

// worldReply is what the command did: its wall time, its peak RSS (the
// kernel's ru_maxrss over it and its children), the most files it held
// open at once (sampled), its output, and its error.
type worldReply struct {
	Seconds  float64  `json:"seconds"`
	MaxRSSKB int64    `json:"max_rss_kb"`
	MaxFDs   int      `json:"max_fds"`
	Output   string   `json:"output"`
	Err      string   `json:"err,omitempty"`
	Left     []string `json:"left,omitempty"`
}

// newWorld starts a world; with ovs, an Open vSwitch runs there (netlab's
// private one, started by a one-bridge keeper lab, untimed).
func (c *config) newWorld(ovs bool) (*world, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private", "--", self, "-world-agent")
	cmd.Dir = c.root
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &world{cmd: cmd, stdin: stdin, in: json.NewEncoder(stdin), out: bufio.NewScanner(stdout)}
	w.out.Buffer(make([]byte, 1<<20), 16<<20)
	if ovs {
		keeper := filepath.Join(c.tmp, "world-keeper.yaml")
		if err := os.WriteFile(keeper, []byte("# the world's Open vSwitch stays up while this lab is\nname: keep\nbridges:\n  kbr: {type: ovs}\n"), 0o644); err != nil {
			w.close()
			return nil, err
		}
		if r := w.run(nil, c.netlab, "up", "-q", keeper); r.Err != "" {
			w.close()
			return nil, fmt.Errorf("world's Open vSwitch: %s\n%s", r.Err, r.Output)
		}
	}
	return w, nil
}

// run runs a command in the world and waits for it.
func (w *world) run(env []string, argv ...string) worldReply {
	return w.ask(worldRequest{Argv: argv, Env: env})
}

// residue lists what the world has named with the prefix.
func (w *world) residue(prefix string) []string {
	return w.ask(worldRequest{Residue: prefix}).Left
}

func (w *world) ask(req worldRequest) worldReply {
	if err := w.in.Encode(req); err != nil {
		return worldReply{Err: "world: " + err.Error()}
	}
	if !w.out.Scan() {
		return worldReply{Err: fmt.Sprintf("world: agent ended: %v", w.out.Err())}
	}
	var r worldReply
	if err := json.Unmarshal(w.out.Bytes(), &r); err != nil {
		return worldReply{Err: "world: " + err.Error()}
	}
	return r
}

// close ends the world: the agent is PID 1 of its PID namespace, so every
// process there (Open vSwitch too) ends with it, and the kernel frees its
// network namespaces, asynchronously: the next timed step waits for a quiet
// machine (waitQuiet).
func (w *world) close() {
	w.stdin.Close() // the agent's end of input: it exits
	w.cmd.Wait()
}

// worldAgent is this program inside a world: make /run and /sys its own,
// bring lo up, then run what the driver asks.
func worldAgent() {
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "bench world: %v\n", err)
		os.Exit(1)
	}
	if err := syscall.Mount("netlab-bench-world", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		fail(fmt.Errorf("mount /run: %w", err))
	}
	// sysfs shows the network namespace of whoever mounts it: the world's.
	if err := syscall.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		fail(fmt.Errorf("mount /sys: %w", err))
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fail(fmt.Errorf("lo up: %v: %s", err, out))
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req worldRequest
		var rep worldReply
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			rep.Err = err.Error()
		} else if req.Residue != "" {
			rep.Left = worldResidue(req.Residue)
		} else {
			rep = worldRun(req)
		}
		if err := enc.Encode(rep); err != nil {
			fail(err)
		}
	}
	os.Exit(0)
}

// worldRun runs and times one command, sampling how many files it holds.
func worldRun(req worldRequest) worldReply {
	var rep worldReply
	if len(req.Argv) == 0 {
		rep.Err = "no command"
		return rep
	}
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		rep.Err = err.Error()
		return rep
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	fdDir := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if ents, e := os.ReadDir(fdDir); e == nil {
				rep.MaxFDs = max(rep.MaxFDs, len(ents))
			}
		}
	}
	rep.Seconds = time.Since(t0).Seconds()
	rep.Output = out.String()
	if err != nil {
		rep.Err = err.Error()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.MaxRSSKB = ru.Maxrss
	}
	return rep
}

// worldResidue lists the world's namespaces, links, Open vSwitch bridges
// and ports, and netlab journals named with the prefix.
func worldResidue(p string) []string {
	var left []string
	for _, d := range []struct{ dir, what string }{{"/run/netns", "namespace"}, {"/sys/class/net", "link"}, {"/run/netlab/labs", "journal"}} {
		ents, _ := os.ReadDir(d.dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), p) {
				left = append(left, d.what+" "+e.Name())
			}
		}
	}
	if _, err := os.Stat("/run/netlab/ovs/db.sock"); err == nil {
		out, err := exec.Command("ovs-vsctl", "--db=unix:/run/netlab/ovs/db.sock", "--timeout=10", "show").Output()
		if err != nil {
			left = append(left, "ovs-vsctl show: "+err.Error())
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], p) {
				left = append(left, "ovs "+strings.ToLower(f[0])+" "+f[1])
			}
		}
	}
	return left
}

// errResidue is a contender that left something of its lab after down.
var errResidue = errors.New("residue after down")
