// Package namespace manages named network namespaces (/run/netns/NAME, the
// ones `ip netns` shows) and is the one place in netlab that switches an OS
// thread into another network namespace (Do).
//
// Why one place: a namespace belongs to a thread, not to a process. A thread
// that is switched and then handed back to the Go scheduler makes random
// goroutines configure the wrong namespace, possibly the host's. Everything
// here runs thread-bound work on a fresh goroutine that locks its thread, and
// a thread that could not be switched back stays locked so that the runtime
// discards it.
package namespace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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
// two concurrent Creates cannot both bind-mount Dir onto itself.
var dirMu sync.Mutex

// prepareDir makes Dir exist and be a shared mount point, like iproute2's
// netns_add: a namespace mounted under it then shows up in mount namespaces
// created later (containers, `ip netns exec`).
// Equivalent to: `mkdir -p /run/netns; mount --make-rshared /run/netns`
// (after `mount --rbind /run/netns /run/netns` if it is not yet a mount point).
func prepareDir() error {
	dirMu.Lock()
	defer dirMu.Unlock()
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
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
	return nil
}

// Create makes a new, empty network namespace named name. It fails with an
// error wrapping fs.ErrExist if the name is taken (the caller decides whether
// an existing namespace is its own).
//
// The unshare runs on a throw-away goroutine that locks its thread and never
// unlocks it: the thread ends up in the new namespace and dies with the
// goroutine, so no other goroutine ever runs there.
//
// Equivalent to: `ip netns add NAME`.
func Create(name string) error {
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

	err = onDisposableThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", self, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// onDisposableThread runs fn on a fresh goroutine locked to a thread that is
// not the process's main thread, and never unlocks it, so the thread is
// destroyed when the goroutine ends whatever fn did to it. (The runtime cannot
// destroy the main thread; it would park it forever, and /proc/self/... — which
// names the main thread — would then describe fn's namespace.)
func onDisposableThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread is discarded when this goroutine returns.
		if unix.Gettid() == unix.Getpid() {
			// We hold the main thread, so a new goroutine that locks its
			// thread necessarily gets another one.
			errc <- onDisposableThread(fn)
			runtime.UnlockOSThread() // untouched main thread: give it back
			return
		}
		errc <- fn()
	}()
	return <-errc
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

// Do runs fn with the calling thread in namespace ns and returns fn's error.
// fn runs on a fresh goroutine locked to its thread, which is switched into
// ns, then back; if switching back fails the thread stays locked and the
// runtime discards it. Goroutines that fn starts do NOT run in ns. A panic in
// fn is re-raised in the caller after the thread is switched back.
//
// Use it only for what has no namespace-bound handle: /proc/sys writes,
// ethtool ioctls, opening /dev/net/tun, os/exec of helpers.
//
// Equivalent to: `ip netns exec NAME ...` for one function.
func Do(ns netns.NsHandle, fn func() error) error {
	if !ns.IsOpen() {
		return errors.New("enter namespace: handle is not open")
	}
	r := doOnThread(ns, fn)
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// doResult carries fn's outcome, panics included, back to Do's caller.
type doResult struct {
	err      error
	panicked bool
	panicVal any
}

// doOnThread is Do's body: see Do.
func doOnThread(ns netns.NsHandle, fn func() error) doResult {
	resc := make(chan doResult, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Keep the main thread out of it, see onDisposableThread.
			resc <- doOnThread(ns, fn)
			runtime.UnlockOSThread()
			return
		}
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			resc <- doResult{err: fmt.Errorf("enter namespace: read current: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			// setns failed: the thread is still where it was.
			runtime.UnlockOSThread()
			resc <- doResult{err: fmt.Errorf("enter namespace: %w", err)}
			return
		}
		var r doResult
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.panicVal = true, p
				}
			}()
			r.err = fn()
		}()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime kills this thread when we return.
			r.err = errors.Join(r.err, fmt.Errorf("leave namespace: %w", err))
			resc <- r
			return
		}
		runtime.UnlockOSThread()
		resc <- r
	}()
	return <-resc
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
