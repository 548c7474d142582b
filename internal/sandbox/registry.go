package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/store"
)

// Registry is the directory of one user's named sandboxes, each held by a
// keeper process: a directory per sandbox (keeper.json, keeper.log) and a
// lock file beside it. Root's is /run/netlab/sandboxes; another user's
// $XDG_RUNTIME_DIR/netlab/sandboxes, or /tmp/netlab-UID/sandboxes when that
// is unset. A sandbox's own state (journals, /run/netns, its private OVS)
// lives inside it, on its private /run.
type Registry struct {
	Dir string
	// top is the per-user directory the registry made (removed with the
	// last sandbox); "" for root's, which lives in netlab's state root.
	top string
}

// DefaultRegistry returns this user's registry. root is netlab's state root
// ("" for /run/netlab), which root's registry lives in.
func DefaultRegistry(root string) (*Registry, error) {
	if os.Geteuid() == 0 {
		if root == "" {
			root = store.DefaultRoot
		}
		return &Registry{Dir: filepath.Join(root, "sandboxes")}, nil
	}
	top, err := userDir()
	if err != nil {
		return nil, err
	}
	return &Registry{Dir: filepath.Join(top, "sandboxes"), top: top}, nil
}

// userDir is $XDG_RUNTIME_DIR/netlab when XDG_RUNTIME_DIR is this user's
// own (the XDG spec: owned by the user, mode 0700), else
// /tmp/netlab-UID. It must belong to this user and be closed to others: a
// keeper's files there say which namespaces commands join.
func userDir() (string, error) {
	uid := os.Geteuid()
	dir := filepath.Join(os.TempDir(), "netlab-"+strconv.Itoa(uid))
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && ownedPrivate(x, uid) {
		dir = filepath.Join(x, "netlab")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("sandbox: state directory: %w", err)
	}
	if !ownedPrivate(dir, uid) {
		return "", fmt.Errorf("sandbox: state directory %s is not this user's own with mode 0700; remove it", dir)
	}
	return dir, nil
}

func ownedPrivate(dir string, uid int) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid && fi.Mode().Perm()&0o077 == 0
}

// Sandbox is a named sandbox: what its keeper.json says.
type Sandbox struct {
	Name string `json:"name"`
	// PID and Start name the keeper (its PID on the machine and its start
	// time), so a reused PID is never taken for it.
	PID    int    `json:"keeper_pid"`
	Start  uint64 `json:"keeper_start"`
	UserNS bool   `json:"user_namespace"` // rootless: a user namespace of its owner's
	// NetNS is the inode of its network namespace, which a command that
	// joined checks (VerifyInside) before it does anything.
	NetNS   uint64    `json:"netns"`
	Created time.Time `json:"created"`
	// Kept says it was made on its own (Create): it stays without labs,
	// until it is removed.
	Kept bool `json:"kept,omitempty"`
}

// Alive says whether the sandbox's keeper still runs.
func (s *Sandbox) Alive() bool {
	start, ok := proc.StartTime(s.PID)
	return ok && start == s.Start
}

// Root is the sandbox's file system as its keeper sees it.
func (s *Sandbox) Root() string { return filepath.Join("/proc", strconv.Itoa(s.PID), "root") }

// Labs lists the labs inside the sandbox, from their journals under root
// (netlab's state root inside, "" for /run/netlab).
func (s *Sandbox) Labs(root string) ([]string, error) {
	if root == "" {
		root = store.DefaultRoot
	}
	labs, err := store.New(filepath.Join(s.Root(), root)).Labs()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	return labs, nil
}

// envNetNS passes the expected network namespace to a joining command.
const envNetNS = "NETLAB_SANDBOX_NETNS"

// Command returns a command that runs exe with args inside the sandbox, in
// the current directory, with this process's environment, as root of the
// sandbox. Equivalent to:
//
//	nsenter --target KEEPER --net --mount --pid [--user --preserve-credentials] --wd=$PWD -- EXE ARGS...
//
// nsenter (util-linux) joins the namespaces before it execs: a Go program
// cannot join a user namespace itself once it runs more than one thread.
func (s *Sandbox) Command(exe string, args ...string) (*exec.Cmd, error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: nsenter (util-linux) is needed to enter a sandbox: %w", s.Name, err)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	argv := []string{"nsenter", "--target", strconv.Itoa(s.PID), "--net", "--mount", "--pid"}
	if s.UserNS {
		argv = append(argv, "--user", "--preserve-credentials")
	}
	argv = append(argv, "--wd="+wd, "--", exe)
	env := append(withoutEnv(os.Environ(), envInit, EnvInside, envNetNS),
		EnvInside+"="+s.Name, envNetNS+"="+strconv.FormatUint(s.NetNS, 10))
	return &exec.Cmd{Path: nsenter, Args: append(argv, args...), Env: env}, nil
}

// VerifyInside checks, in a command that joined a named sandbox, that it
// is in that sandbox's network namespace: between the check that the keeper
// lives and nsenter's join, the keeper could have died and its PID gone to
// another process. A command not started by Command passes.
func VerifyInside() error {
	want := os.Getenv(envNetNS)
	if want == "" {
		return nil
	}
	got, err := netNSInode("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", Inside(), err)
	}
	if strconv.FormatUint(got, 10) != want {
		return fmt.Errorf("sandbox %s: its keeper ended while this command joined it (run it again)", Inside())
	}
	// Checked: the commands this one starts run in other namespaces (ip
	// netns exec) and have nothing to check.
	os.Unsetenv(envNetNS)
	return nil
}

func netNSInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func (r *Registry) dir(name string) string      { return filepath.Join(r.Dir, name) }
func (r *Registry) lockPath(name string) string { return filepath.Join(r.Dir, name+".lock") }
func (r *Registry) usePath(name string) string  { return filepath.Join(r.dir(name), "use.lock") }

// Get reads a sandbox's keeper.json; nil when there is none.
func (r *Registry) Get(name string) (*Sandbox, error) {
	b, err := os.ReadFile(filepath.Join(r.dir(name), "keeper.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	var s Sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sandbox %s: keeper.json: %w", name, err)
	}
	return &s, nil
}

// List returns the registered sandboxes, by name, live or not.
func (r *Registry) List() ([]*Sandbox, error) {
	entries, err := os.ReadDir(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var out []*Sandbox
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s, err := r.Get(e.Name())
		if err != nil {
			return nil, err
		}
		if s != nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// Use returns the live sandbox name, making it first when create is set,
// and marks this process as its user until release is called: a sandbox in
// use is never removed as idle. Without create, an absent (or dead) sandbox
// is nil. The caller calls release, then RemoveIfIdle.
func (r *Registry) Use(name string, create bool) (sb *Sandbox, release func(), err error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	unlock, err := r.lock(name)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	sb, err = r.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if sb != nil && !sb.Alive() {
		// Its keeper died, and everything inside with it: only files remain.
		if err := os.RemoveAll(r.dir(name)); err != nil {
			return nil, nil, fmt.Errorf("sandbox %s: remove what its dead keeper left: %w", name, err)
		}
		sb = nil
	}
	if sb == nil {
		if !create {
			r.forget(name)
			return nil, func() {}, nil
		}
		if sb, err = r.create(name, false); err != nil {
			r.forget(name)
			return nil, nil, err
		}
	}
	use, err := openLock(r.usePath(name))
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	if err := flock(use, syscall.LOCK_SH); err != nil {
		use.Close()
		return nil, nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	return sb, func() { use.Close() }, nil
}

// Create makes the sandbox name, kept until Remove: a place to set up
// before labs come (another machine's underlay, in tests), or to keep with
// no lab. It is an error if it exists.
func (r *Registry) Create(name string) (*Sandbox, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	unlock, err := r.lock(name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if sb, err := r.Get(name); err != nil {
		return nil, err
	} else if sb != nil && sb.Alive() {
		return nil, fmt.Errorf("sandbox %s exists (keeper %d)", name, sb.PID)
	}
	os.RemoveAll(r.dir(name))
	sb, err := r.create(name, true)
	if err != nil {
		r.forget(name)
		return nil, err
	}
	return sb, nil
}

// RemoveIfIdle removes the sandbox when no process uses it and no lab is
// left in it (root: netlab's state root inside). It reports whether it
// removed it.
func (r *Registry) RemoveIfIdle(name, root string) (bool, error) {
	unlock, err := r.lock(name)
	if err != nil {
		return false, err
	}
	defer unlock()
	sb, err := r.Get(name)
	if err != nil {
		return false, err
	}
	if sb == nil {
		r.forget(name)
		return false, nil
	}
	use, err := os.OpenFile(r.usePath(name), os.O_RDWR, 0)
	if err == nil {
		defer use.Close()
		if err := flock(use, syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
	}
	if sb.Alive() {
		if sb.Kept {
			return false, nil
		}
		labs, err := sb.Labs(root)
		if err != nil {
			return false, err
		}
		if len(labs) > 0 {
			return false, nil
		}
	}
	return true, r.remove(sb)
}

// Remove removes the sandbox whatever it holds: its keeper is killed, and
// with it every process, namespace and file of the sandbox. It returns nil
// when there is no such sandbox.
func (r *Registry) Remove(name string) error {
	unlock, err := r.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := r.Get(name)
	if err != nil {
		return err
	}
	if sb == nil {
		r.forget(name)
		return nil
	}
	return r.remove(sb)
}

// remove kills the keeper, the first process of the sandbox's PID
// namespace: the kernel then kills every other one and lets the keeper's
// exit complete only when they are gone. Then the sandbox's files go. Call it
// holding the sandbox's lock.
func (r *Registry) remove(sb *Sandbox) error {
	if sb.Alive() {
		if err := syscall.Kill(sb.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("sandbox %s: kill keeper %d: %w", sb.Name, sb.PID, err)
		}
		for deadline := time.Now().Add(10 * time.Second); sb.Alive(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("sandbox %s: keeper %d still running 10 s after SIGKILL", sb.Name, sb.PID)
			}
		}
	}
	if err := os.RemoveAll(r.dir(sb.Name)); err != nil {
		return fmt.Errorf("sandbox %s: %w", sb.Name, err)
	}
	r.forget(sb.Name)
	return nil
}

// forget removes the lock file of a sandbox that is not there (any more),
// and the registry's directories once they are empty (they are not, and
// stay, while another sandbox is there). Call it holding the lock: a waiter
// that then gets the removed file starts over (lock).
func (r *Registry) forget(name string) {
	os.Remove(r.lockPath(name))
	if os.Remove(r.Dir) == nil && r.top != "" {
		os.Remove(r.top)
	}
}

// lock takes the sandbox's lock exclusively: creating, finding and removing
// a sandbox are serialised by it. remove deletes the lock file while holding
// it, so a waiter that got the deleted one starts over.
func (r *Registry) lock(name string) (unlock func(), err error) {
	path := r.lockPath(name)
	for try := 0; ; try++ {
		if err := os.MkdirAll(r.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", name, err)
		}
		f, err := openLock(path)
		if errors.Is(err, fs.ErrNotExist) && try < 100 {
			continue // the directory went with another sandbox meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: lock: %w", name, err)
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("sandbox %s: lock: %w", name, err)
		}
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

func openLock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// CheckName accepts 1 to 32 of [a-z0-9-], starting with a letter or digit.
func CheckName(name string) error {
	ok := name != "" && len(name) <= 32 && name[0] != '-'
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid sandbox name %q: 1 to 32 of [a-z0-9-], not starting with -", name)
	}
	return nil
}
