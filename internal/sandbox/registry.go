package sandbox

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/store"
)

// Registry is where one user's named sandboxes are registered, each held by
// a keeper process: a directory per sandbox (keeper.json, keeper.log,
// use.lock) and a lock file beside it. A sandbox's own state (journals,
// /run/netns, its private OVS) lives inside it, on its private /run.
//
// Root's registry is /run/netlab/sandboxes (in netlab's state root). Any
// other user's is found from their uid, not from their environment, so that
// a sandbox made in one shell is found from every other (a login shell, sudo
// -u, cron, ssh): new sandboxes go to /tmp/netlab-UID/sandboxes, and every
// lookup also searches /run/user/UID/netlab/sandboxes (systemd's runtime
// directory of the user, there whether or not this shell says so) and
// $XDG_RUNTIME_DIR/netlab/sandboxes (where earlier versions made them). Only
// directories that are the user's own with mode 0700 are used: the files in
// them say which namespaces commands join. When /tmp/netlab-UID is another
// user's, new sandboxes go to the first of the other two that is usable:
// then $XDG_RUNTIME_DIR, set to a directory of one's own with mode 0700, is
// the way round.
//
// /tmp/netlab-UID is the first choice rather than /run/user/UID because
// logind removes the latter at the user's last logout, while a keeper (and
// its labs) may live on.
type Registry struct {
	// Dir is where a new sandbox is registered, unless one of its name is
	// registered elsewhere already (see at).
	Dir string
	// places are the directories searched for sandboxes, Dir's first.
	places []place

	// reaped holds, by keeper PID, the sandboxes this process made: their
	// keepers are its children, which remove waits to have reaped.
	mu     sync.Mutex
	reaped map[int]<-chan struct{}
}

// made records a sandbox this process just made (see reaped).
func (r *Registry) made(sb *Sandbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reaped == nil {
		r.reaped = map[int]<-chan struct{}{}
	}
	r.reaped[sb.PID] = sb.reaped
}

// ours gives sb, read again from its keeper.json, what made recorded.
func (r *Registry) ours(sb *Sandbox) *Sandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch, ok := r.reaped[sb.PID]; ok && sb.reaped == nil {
		sb.reaped = ch
	}
	return sb
}

// place is one directory of registered sandboxes.
type place struct {
	dir string // the directory of sandbox directories and lock files
	// top is the per-user directory made for dir and removed with its last
	// sandbox; "" for root's, which lives in netlab's state root.
	top string
}

// DefaultRegistry returns this user's registry. root is netlab's state root
// ("" for /run/netlab), which root's registry lives in. It creates nothing:
// directories are made when a sandbox is.
func DefaultRegistry(root string) (*Registry, error) {
	if os.Geteuid() == 0 {
		if root == "" {
			root = store.DefaultRoot
		}
		dir := filepath.Join(root, "sandboxes")
		return &Registry{Dir: dir, places: []place{{dir: dir}}}, nil
	}
	return userRegistry(os.Geteuid(), "/tmp", "/run/user", os.Getenv("XDG_RUNTIME_DIR"))
}

// userRegistry is the registry of uid, a user other than root (see
// Registry): tmp and runUser are /tmp and /run/user but in tests, xdg is
// $XDG_RUNTIME_DIR. /tmp is named, not os.TempDir: $TMPDIR would hide a
// sandbox from a shell that sets it otherwise.
func userRegistry(uid int, tmp, runUser, xdg string) (*Registry, error) {
	id := strconv.Itoa(uid)
	type candidate struct {
		top string
		// parent is the user's own directory top is made in; "" for the
		// one in /tmp, which anyone may write to.
		parent string
	}
	candidates := []candidate{
		{top: filepath.Join(tmp, "netlab-"+id)},
		{top: filepath.Join(runUser, id, "netlab"), parent: filepath.Join(runUser, id)},
	}
	if xdg != "" && filepath.IsAbs(xdg) {
		candidates = append(candidates, candidate{top: filepath.Join(xdg, "netlab"), parent: filepath.Clean(xdg)})
	}
	r := &Registry{}
	var refused []string
	seen := map[string]bool{}
	for _, c := range candidates {
		if seen[c.top] {
			continue
		}
		seen[c.top] = true
		if c.parent != "" && !ownedPrivate(c.parent, uid) {
			if c.parent == filepath.Clean(xdg) {
				refused = append(refused, fmt.Sprintf("XDG_RUNTIME_DIR=%s is not a directory of yours with mode 0700", xdg))
			}
			continue
		}
		if why := notOwnPrivate(c.top, uid); why != "" {
			refused = append(refused, why)
			continue
		}
		r.places = append(r.places, place{dir: filepath.Join(c.top, "sandboxes"), top: c.top})
	}
	if len(r.places) == 0 {
		return nil, fmt.Errorf("sandbox: no directory for this user's sandboxes: %s; "+
			"the way round: set XDG_RUNTIME_DIR to a directory of your own with mode 0700 "+
			"(mkdir -m 0700 ~/.netlab-run && export XDG_RUNTIME_DIR=~/.netlab-run), and keep it set for every netlab command",
			strings.Join(refused, "; "))
	}
	r.Dir = r.places[0].dir
	return r, nil
}

// notOwnPrivate says why dir, when it exists, is not uid's own with mode
// 0700; "" when it is, or is not there (it can be made).
func notOwnPrivate(dir string, uid int) string {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("%s: %v", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Sprintf("%s is not a directory (%s)", dir, fi.Mode().Type())
	case ok && int(st.Uid) != uid:
		return fmt.Sprintf("%s belongs to uid %d, not to you (uid %d): another user made it (root may remove it), and a directory that says which namespaces your commands join must be yours alone", dir, st.Uid, uid)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Sprintf("%s has mode %04o: others may change it (chmod 0700 it, or remove it)", dir, fi.Mode().Perm())
	}
	return ""
}

func ownedPrivate(dir string, uid int) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid && fi.Mode().Perm()&0o077 == 0
}

// mkdirPrivate makes dir with mode 0700, whatever the umask (which could
// take the owner's own bits); one already there is left as it is.
func mkdirPrivate(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// ensure makes the place's directories. A user's top is checked again once
// made: another user could have made it first.
func (p place) ensure() error {
	if p.top == "" {
		// netlab's state root, root's alone as internal/store makes it.
		if err := os.MkdirAll(filepath.Dir(p.dir), 0o700); err != nil {
			return err
		}
		return mkdirPrivate(p.dir)
	}
	if err := mkdirPrivate(p.top); err != nil {
		return err
	}
	if why := notOwnPrivate(p.top, os.Geteuid()); why != "" {
		return errors.New(why)
	}
	return mkdirPrivate(p.dir)
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
	// Incomplete says why a sandbox's directory holds no sandbox that can
	// be used ("" when it does): its making was cut short (a creator
	// killed before it wrote keeper.json) or is under way, or keeper.json
	// is unreadable. List shows such a directory; Use, Create and Remove
	// clear it away.
	Incomplete string `json:"incomplete,omitempty"`

	// reaped is closed once the keeper, a child of this process (create),
	// has been waited for; nil for a sandbox this process did not make.
	reaped <-chan struct{}
}

// Alive says whether the sandbox's keeper still runs, and is not on its
// way out: a killed keeper stays, exiting, until the kernel has ended every
// other process of its sandbox.
func (s *Sandbox) Alive() bool {
	return s.Incomplete == "" && !s.gone() && !exiting(s.PID)
}

// gone says whether the keeper has ended (a zombie has): the sandbox's
// processes are all gone then.
func (s *Sandbox) gone() bool {
	if s.PID <= 1 {
		return true
	}
	start, ok := proc.StartTime(s.PID)
	return !ok || start != s.Start
}

// exiting says whether the process pid is exiting: PF_EXITING (0x4) in the
// flags of /proc/PID/stat (field 9).
func exiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	// After "pid (comm) ": state is field 3, flags field 9.
	f := strings.Fields(s[i+1:])
	if len(f) < 7 {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&0x4 != 0
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

// envSignalDefaults lists signals (numbers, comma-separated) that the
// netlab which started a joined command had with their default action and
// made it inherit as ignored (see SignalDefaults).
const envSignalDefaults = "NETLAB_SANDBOX_SIGDFL"

// SignalDefaults is the environment entry that tells a netlab joined to a
// sandbox (Command) which of sigs to give back their default action for
// the programs it starts (VerifyInside does), before the caller ignores
// them while it waits: an ignored signal stays ignored through fork and
// exec, so a command run by `netlab exec` in a sandbox would not end on
// the terminal's Ctrl-C. Signals this process already ignored (a command
// started in the background) stay ignored.
func SignalDefaults(sigs ...syscall.Signal) string {
	var nums []string
	for _, sig := range sigs {
		if !signal.Ignored(sig) {
			nums = append(nums, strconv.Itoa(int(sig)))
		}
	}
	return envSignalDefaults + "=" + strings.Join(nums, ",")
}

// restoreSignals catches, and drops, the signals SignalDefaults listed: a
// caught signal is the default again in every program this one starts
// (the kernel resets handlers at exec), while this process goes on
// ignoring them as the netlab outside does.
func restoreSignals() {
	list := os.Getenv(envSignalDefaults)
	os.Unsetenv(envSignalDefaults)
	var sigs []os.Signal
	for _, f := range strings.Split(list, ",") {
		if n, err := strconv.Atoi(f); err == nil && n > 0 && n < 65 {
			sigs = append(sigs, syscall.Signal(n))
		}
	}
	if len(sigs) > 0 {
		// Never read: a full channel drops what comes (Notify never blocks).
		signal.Notify(make(chan os.Signal, 1), sigs...)
	}
}

// VerifyInside checks, in a command that joined a named sandbox, that it
// is in that sandbox's network namespace: between the check that the keeper
// lives and nsenter's join, the keeper could have died and its PID gone to
// another process. A command not started by Command passes. It also gives
// back the signal dispositions SignalDefaults names.
func VerifyInside() error {
	restoreSignals()
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

func (p place) sandboxDir(name string) string { return filepath.Join(p.dir, name) }
func (p place) lockPath(name string) string   { return filepath.Join(p.dir, name+".lock") }
func (p place) usePath(name string) string    { return filepath.Join(p.sandboxDir(name), "use.lock") }

// has says whether the place holds anything of the sandbox name: its
// directory or its lock file.
func (p place) has(name string) bool {
	for _, path := range []string{p.sandboxDir(name), p.lockPath(name)} {
		if _, err := os.Lstat(path); err == nil {
			return true
		}
	}
	return false
}

// at returns the place the sandbox name is registered in: the first that
// holds anything of it, else the place for new ones.
func (r *Registry) at(name string) place {
	for _, p := range r.places {
		if p.has(name) {
			return p
		}
	}
	return r.places[0]
}

// Get reads a sandbox's keeper.json; nil when there is no such sandbox. A
// directory without a readable keeper.json is a sandbox with Incomplete
// set.
func (r *Registry) Get(name string) (*Sandbox, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return r.at(name).get(name)
}

func (p place) get(name string) (*Sandbox, error) {
	dir := p.sandboxDir(name)
	b, err := os.ReadFile(filepath.Join(dir, "keeper.json"))
	if errors.Is(err, fs.ErrNotExist) {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			return &Sandbox{Name: name, Incomplete: "its making was cut short (no keeper.json)"}, nil
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	var s Sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return &Sandbox{Name: name, Incomplete: fmt.Sprintf("keeper.json unreadable: %v", err)}, nil
	}
	if s.Name != name || s.PID <= 1 {
		// Never signal a process keeper.json does not name as a keeper.
		return &Sandbox{Name: name, Incomplete: fmt.Sprintf("keeper.json names sandbox %q, keeper %d", s.Name, s.PID)}, nil
	}
	return &s, nil
}

// List returns the registered sandboxes, by name in each place, live, dead
// (Alive false) or incomplete; one being made (or removed) right now says
// so in Incomplete.
func (r *Registry) List() ([]*Sandbox, error) {
	var out []*Sandbox
	for _, p := range r.places {
		entries, err := os.ReadDir(p.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list sandboxes: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || CheckName(e.Name()) != nil {
				continue
			}
			s, err := p.get(e.Name())
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue // removed meanwhile
			}
			if s.Incomplete != "" && p.locked(e.Name()) {
				s.Incomplete = "being made or removed (its lock is held)"
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// locked says whether a process holds the sandbox's lock; it creates no
// file.
func (p place) locked(name string) bool {
	f, err := os.OpenFile(p.lockPath(name), os.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// Use returns the live sandbox name, making it first when create is set,
// and marks this process as its user until release is called: a sandbox in
// use is never removed as idle. Without create, an absent (or dead) sandbox
// is nil, and nothing is written. ended is what was left of an earlier
// sandbox of the name, which Use removed: its keeper had died (and every
// process and lab in it with it), or its making had been cut short. The
// caller calls release, then RemoveIfIdle.
func (r *Registry) Use(name string, create bool) (sb, ended *Sandbox, release func(), err error) {
	if err := CheckName(name); err != nil {
		return nil, nil, nil, err
	}
	p := r.at(name)
	if !create && !p.has(name) {
		return nil, nil, func() {}, nil
	}
	unlock, err := p.lock(name)
	if err != nil {
		return nil, nil, nil, err
	}
	defer unlock()
	sb, err = p.get(name)
	if err != nil {
		return nil, nil, nil, err
	}
	if sb != nil && !sb.Alive() {
		// Under the lock, no creator is at work: only files remain.
		if err := os.RemoveAll(p.sandboxDir(name)); err != nil {
			return nil, nil, nil, fmt.Errorf("sandbox %s: remove what is left of it: %w", name, err)
		}
		sb, ended = nil, sb
	}
	if sb == nil {
		if !create {
			p.forget(name)
			return nil, ended, func() {}, nil
		}
		if sb, err = p.create(name, false, false); err != nil {
			p.forget(name)
			return nil, ended, nil, err
		}
		r.made(sb)
	}
	use, err := openLock(p.usePath(name))
	if err != nil {
		return nil, ended, nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	if err := store.Flock(use, syscall.LOCK_SH); err != nil {
		use.Close()
		return nil, ended, nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	return sb, ended, func() { use.Close() }, nil
}

// Create makes the sandbox name, kept until Remove: a place to set up
// before labs come (another machine's underlay, in tests), or to keep with
// no lab. It is an error if it exists.
func (r *Registry) Create(name string) (*Sandbox, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	p := r.at(name)
	unlock, err := p.lock(name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if sb, err := p.get(name); err != nil {
		return nil, err
	} else if sb != nil && sb.Alive() {
		return nil, &ExistsError{Name: name, PID: sb.PID}
	}
	if err := os.RemoveAll(p.sandboxDir(name)); err != nil {
		return nil, fmt.Errorf("sandbox %s: remove what is left of it: %w", name, err)
	}
	sb, err := p.create(name, true, false)
	if err != nil {
		p.forget(name)
		return nil, err
	}
	r.made(sb)
	return sb, nil
}

// Fresh makes the sandbox name for one command (`netlab sandbox run`): an
// error if it exists, as for Create, and this process marked its user, as
// by Use, until release is called. kept makes it stay without labs (until
// Remove), as Create's; tied makes it end when the calling thread does
// (see create), so that a sandbox made for a command never outlives the
// netlab that waits for it, even killed with SIGKILL.
func (r *Registry) Fresh(name string, kept, tied bool) (sb *Sandbox, release func(), err error) {
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	p := r.at(name)
	unlock, err := p.lock(name)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if old, err := p.get(name); err != nil {
		return nil, nil, err
	} else if old != nil && old.Alive() {
		return nil, nil, &ExistsError{Name: name, PID: old.PID}
	}
	if err := os.RemoveAll(p.sandboxDir(name)); err != nil {
		return nil, nil, fmt.Errorf("sandbox %s: remove what is left of it: %w", name, err)
	}
	if sb, err = p.create(name, kept, tied); err != nil {
		p.forget(name)
		return nil, nil, err
	}
	r.made(sb)
	use, err := openLock(p.usePath(name))
	if err == nil {
		err = store.Flock(use, syscall.LOCK_SH)
	}
	if err != nil {
		p.remove(sb)
		return nil, nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	return sb, func() { use.Close() }, nil
}

// ExistsError is a sandbox that was to be made fresh but is there, alive.
type ExistsError struct {
	Name string
	PID  int // its keeper
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("sandbox %s exists (keeper %d)", e.Name, e.PID)
}

// RemoveIfIdle removes the sandbox when no process uses it and no lab is
// left in it (root: netlab's state root inside), or when its keeper is
// dead. It reports whether it removed it.
func (r *Registry) RemoveIfIdle(name, root string) (bool, error) {
	if err := CheckName(name); err != nil {
		return false, err
	}
	p := r.at(name)
	if !p.has(name) {
		return false, nil
	}
	unlock, err := p.lock(name)
	if err != nil {
		return false, err
	}
	defer unlock()
	sb, err := p.get(name)
	if err != nil {
		return false, err
	}
	if sb == nil {
		p.forget(name)
		return false, nil
	}
	use, err := os.OpenFile(p.usePath(name), os.O_RDWR, 0)
	if err == nil {
		defer use.Close()
		if err := store.Flock(use, syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
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
	return true, p.remove(r.ours(sb))
}

// Remove removes the sandbox whatever it holds: its keeper is killed, and
// with it every process, namespace and file of the sandbox; an incomplete
// one's files go. It returns nil when there is no such sandbox.
func (r *Registry) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	p := r.at(name)
	if !p.has(name) {
		return nil
	}
	unlock, err := p.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	sb, err := p.get(name)
	if err != nil {
		return err
	}
	if sb == nil {
		p.forget(name)
		return nil
	}
	return p.remove(r.ours(sb))
}

// remove kills the keeper, the first process of the sandbox's PID
// namespace: the kernel then kills every other one and lets the keeper's
// exit complete only when they are gone. Then the sandbox's files go. Call it
// holding the sandbox's lock.
func (p place) remove(sb *Sandbox) error {
	if sb.Incomplete == "" && !sb.gone() {
		if err := syscall.Kill(sb.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("sandbox %s: kill keeper %d: %w", sb.Name, sb.PID, err)
		}
		for deadline := time.Now().Add(10 * time.Second); !sb.gone(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("sandbox %s: keeper %d still running 10 s after SIGKILL", sb.Name, sb.PID)
			}
		}
		if sb.reaped != nil {
			select {
			case <-sb.reaped:
			case <-time.After(time.Second):
			}
		}
	}
	if err := os.RemoveAll(p.sandboxDir(sb.Name)); err != nil {
		return fmt.Errorf("sandbox %s: %w", sb.Name, err)
	}
	p.forget(sb.Name)
	return nil
}

// forget removes the lock file of a sandbox that is not there (any more),
// and the place's directories once they are empty (they are not, and
// stay, while another sandbox is there). Call it holding the lock: a waiter
// that then gets the removed file starts over (lock).
func (p place) forget(name string) {
	os.Remove(p.lockPath(name))
	if os.Remove(p.dir) == nil && p.top != "" {
		os.Remove(p.top)
	}
}

// lock takes the sandbox's lock exclusively, making the place's
// directories: creating, finding and removing a sandbox are serialised by
// it. remove deletes the lock file while holding it, so a waiter that got
// the deleted one starts over.
func (p place) lock(name string) (unlock func(), err error) {
	path := p.lockPath(name)
	for try := 0; ; try++ {
		if err := p.ensure(); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", name, err)
		}
		f, err := openLock(path)
		if errors.Is(err, fs.ErrNotExist) && try < 100 {
			continue // the directory went with another sandbox meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: lock: %w", name, err)
		}
		if err := store.Flock(f, syscall.LOCK_EX); err != nil {
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

// NewName is prefix and six random characters of [a-z2-7]: the name of a
// sandbox made for one run ("run-", "test-"), 30 bits apart from another's.
func NewName(prefix string) string { return prefix + strings.ToLower(rand.Text()[:6]) }

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
