// Package namespace manages named network namespaces (/run/netns/NAME, the
// ones `ip netns` shows) and is the one place in netlab that switches an OS
// thread into another network namespace (Do).
//
// Why one place: a namespace belongs to a thread, not to a process. A thread
// that is switched and then handed back to the Go scheduler makes random
// goroutines configure the wrong namespace, possibly the host's. Everything
// here runs thread-bound work on threads kept locked for it (threads.go),
// and a thread that could not be switched back stays locked so that the
// runtime discards it.
package namespace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bind-mounted, as with iproute2.
const Dir = "/run/netns"

// Host is the name of the process's own (root) network namespace; it equals
// topology.Host. It is never a file under Dir.
const Host = "host"

// Path returns /run/netns/<name>.
func Path(name string) string { return filepath.Join(Dir, name) }

// checkName rejects names that would escape Dir or that iproute2 could not
// show.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	if name == Host {
		return fmt.Errorf("invalid namespace name %q: reserved for the root namespace", name)
	}
	return nil
}

// dirMu serialises making Dir a shared mount point within this process, so
// two concurrent Creates cannot both bind-mount Dir onto itself; dirReady
// says it is done (once per process: each check takes the kernel's mount
// lock).
var (
	dirMu    sync.Mutex
	dirReady bool
)

// prepareDir makes Dir exist and be a shared mount point, like iproute2's
// netns_add: a namespace mounted under it then shows up in mount namespaces
// created later (containers, `ip netns exec`).
// Equivalent to: `mkdir -p /run/netns; mount --make-rshared /run/netns`
// (after `mount --rbind /run/netns /run/netns` if it is not yet a mount point).
func prepareDir() error {
	dirMu.Lock()
	defer dirMu.Unlock()
	if dirReady {
		return nil
	}
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		dirReady = true
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("mount --make-rshared %s: %w", Dir, err)
	}
	// Not a mount point yet: bind it onto itself first. MS_REC carries over
	// namespaces already mounted inside it.
	if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount --rbind %s %s: %w", Dir, Dir, err)
	}
	if err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount --make-rshared %s: %w", Dir, err)
	}
	dirReady = true
	return nil
}

// Create makes a new, empty network namespace named name. It fails with an
// error wrapping fs.ErrExist if the name is taken (the caller decides whether
// an existing namespace is its own).
//
// Equivalent to: `ip netns add NAME`.
func Create(name string) error { return CreateWith(name, nil) }

// CreateWith is Create, then fn run inside the new namespace (nil: nothing)
// on the thread that made it: what a new namespace needs first (its lo up,
// its sysctls, a netlink socket of its own) without a second switch. An
// error of fn is returned, and the namespace stays (the caller deletes it
// or lets a later run repair it).
//
// The unshare runs on one of the threads kept for namespace work (see
// threads), not the caller's.
//
// Equivalent to: `ip netns add NAME && ip netns exec NAME ...`.
func CreateWith(name string, fn func() error) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := prepareDir(); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		// *PathError of EEXIST: errors.Is(err, fs.ErrExist) holds.
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	f.Close()
	made := false
	r := threads.run(&job{unshare: true, bind: path, fn: func() error {
		made = true
		if fn == nil {
			return nil
		}
		return fn()
	}})
	if r.err != nil {
		if !made {
			os.Remove(path)
		}
		return fmt.Errorf("create namespace %s: %w", name, r.err)
	}
	return nil
}

// Delete removes the namespace's name. The namespace itself lives on while
// something (a process, an open handle, a socket) still uses it. It returns
// nil if the name does not exist.
//
// Equivalent to: `ip netns delete NAME`.
func Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := Path(name)
	// EINVAL: not a mount point (a file left behind by a crash between
	// create and mount); ENOENT: absent.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete namespace %s: umount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// Exists reports whether name is a mounted namespace. "host" always exists.
// A plain file left under /run/netns by an interrupted Create does not count
// (but List shows it and Delete removes it).
func Exists(name string) bool {
	if name == Host {
		return true
	}
	if checkName(name) != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// List returns the names under /run/netns, sorted; none if the directory
// does not exist.
//
// Equivalent to: `ip netns list`.
func List() ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// Open returns a handle on the named namespace; the caller closes it. The
// name "host" is the process's own (root) namespace, read from
// /proc/self/ns/net (the main thread's, which netlab never switches).
func Open(name string) (netns.NsHandle, error) {
	path := "/proc/self/ns/net"
	if name != Host {
		if err := checkName(name); err != nil {
			return netns.None(), err
		}
		path = Path(name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("open namespace %s: %w", name, &fs.PathError{Op: "open", Path: path, Err: err})
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("open namespace %s: %s is not a namespace (interrupted create? delete it)", name, path)
	}
	return netns.NsHandle(fd), nil
}

// Do runs fn inside namespace ns and returns fn's error. fn runs on one of
// the threads kept for namespace work, locked to it and switched into ns
// (see threads); the caller's thread never moves. Goroutines that fn
// starts do NOT run in ns. A panic in fn is re-raised in the caller.
//
// Use it only for what has no namespace-bound handle: /proc/sys, opening
// /dev/net/tun, os/exec of helpers, and making a socket that then stays
// bound to the namespace.
//
// Equivalent to: `ip netns exec NAME ...` for one function.
func Do(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return errors.New("enter namespace: handle is not open")
	}
	return threads.run(&job{ns: ns, fn: fn}).err
}

// doResult carries fn's outcome, panics included, back to Do's caller.
type doResult struct {
	err      error
	panicked bool
	panicVal any
}

// PidsIn returns, for each named namespace, the processes whose network
// namespace (/proc/PID/ns/net) it is, with one walk of /proc for all: `down`
// stops them before deleting the namespaces, since they would keep them
// (and their links) alive. Namespaces that do not exist are left out.
//
// Equivalent to: `ip netns pids NAME` for each.
func PidsIn(names []string) (map[string][]int, error) {
	type key struct{ dev, ino uint64 }
	want := map[key]string{}
	for _, name := range names {
		if err := checkName(name); err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Stat(Path(name), &st); err != nil {
			continue
		}
		want[key{st.Dev, st.Ino}] = name
	}
	out := map[string][]int{}
	if len(want) == 0 {
		return out, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("pids of namespaces: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue
		}
		if name, ok := want[key{st.Dev, st.Ino}]; ok {
			out[name] = append(out[name], pid)
		}
	}
	return out, nil
}
