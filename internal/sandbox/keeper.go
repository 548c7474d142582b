package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/atomicfile"
	"github.com/netlab-dev/netlab/internal/proc"
)

// create starts a keeper for a new named sandbox and registers it in the
// place (kept: see Sandbox.Kept); call it holding the sandbox's lock. Its
// files are the owner's alone: the directory 0700, the files 0600.
//
// The keeper is this program started again as the sandbox's first process,
// in a session of its own (a terminal's Ctrl-C never reaches it), its output
// in keeper.log. It reports ready once the sandbox is set up; then
// keeper.json is written (atomically), and only then is the keeper told to
// go on: a creator that dies in between leaves a keeper that ends by itself,
// never one nobody knows.
//
// tied gives the keeper a parent-death signal (SIGKILL): the sandbox ends
// when the thread that called create does, with every process in it. The
// caller locks its OS thread (runtime.LockOSThread) for as long as the
// sandbox is to live; a sandbox made for one command goes with its maker.
func (p place) create(name string, kept, tied bool) (*Sandbox, error) {
	exe, err := self()
	if err != nil {
		return nil, err
	}
	dir := p.sandboxDir(name)
	if err := mkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	log, err := os.OpenFile(filepath.Join(dir, "keeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	defer log.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	defer ready.Close()
	commitR, commit, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	defer commit.Close()
	userns := NeedsUserNamespace()
	cmd := &exec.Cmd{
		Path: exe,
		// What ps shows; the role comes from the environment.
		Args:        []string{exe, "sandbox", "keeper", name},
		Env:         append(withoutEnv(os.Environ(), envInit, EnvInside, envNetNS), envInit+"="+roleKeeper, EnvInside+"="+name),
		Stdout:      log,
		Stderr:      log,
		ExtraFiles:  []*os.File{readyW, commitR},
		SysProcAttr: sysProcAttr(userns),
	}
	cmd.SysProcAttr.Setsid = true
	if tied {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	err = cmd.Start()
	readyW.Close()
	commitR.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, &Error{Op: "create", Err: err, UserNS: userns}
	}
	fail := func(err error) (*Sandbox, error) {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	if err := readReady(ready); err != nil {
		return fail(&Error{Op: "set up", Err: err, UserNS: userns})
	}
	pid := cmd.Process.Pid
	start, ok := proc.StartTime(pid)
	if !ok {
		return fail(fmt.Errorf("keeper %d ended", pid))
	}
	netns, err := netNSInode("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return fail(err)
	}
	sb := &Sandbox{Name: name, PID: pid, Start: start, UserNS: userns, NetNS: netns, Created: time.Now().UTC().Truncate(time.Second), Kept: kept}
	if err := writeJSON(filepath.Join(dir, "keeper.json"), sb); err != nil {
		return fail(err)
	}
	if _, err := commit.Write([]byte("go")); err != nil {
		return fail(fmt.Errorf("start keeper: %w", err))
	}
	// Reap the keeper if it ends while this process still runs; remove
	// waits for that, so no zombie of it outlives a netlab that removed it.
	reaped := make(chan struct{})
	go func() {
		cmd.Wait()
		close(reaped)
	}()
	sb.reaped = reaped
	return sb, nil
}

// writeJSON writes v to path atomically (a temporary file renamed).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}
