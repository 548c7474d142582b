package kernel

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// procSys is where a run opens sysctls: a proc filesystem of the run's
// own, mounted detached (fsopen and fsmount: nothing on the machine sees
// it, and it goes with its last descriptor, a crash included), replaced
// with a fresh one after procRefresh opens.
//
// Why: a sysctl's path is looked up in the dentry cache of the proc
// filesystem it is opened in, and every namespace that ever looked a key
// up there left a dentry of the same name under the same parent. The
// kernel walks them all, rejecting the other namespaces' one by one under
// a global lock (proc_sys_compare; docs/design.md, "Up at scale"), so in
// the machine's /proc each lookup costs time in proportion to the
// namespaces that exist, and a lab's up in proportion to their square.
// Measured with 3,000 live namespaces: reading netlab's six sysctls of
// each took 8.7-9.4 s through /proc, 6.0 s through one fresh proc, 0.43 s
// through a fresh proc every 128 namespaces.
//
// Where the kernel refuses a proc of our own (a user namespace that does
// not own its PID namespace, a kernel before 5.2), the machine's /proc.
type procSys struct {
	mu       sync.Mutex
	cur      *procMount
	fallback bool // a mount was refused: /proc from now on
}

// procRefresh is how many opens a proc mount serves before a fresh one
// replaces it: about 40-250 namespaces' worth (1-6 keys each), so a lookup
// walks at most that many entries, while a mount (some tens of µs) costs
// well under a µs an open.
const procRefresh = 256

// procMount is one proc filesystem: its root (a mount's descriptor, or
// /proc opened), the opens it served, and its users now.
type procMount struct {
	fd      int
	opens   int
	users   int
	retired bool
	shared  bool // /proc itself: never retired
}

// openSysctl opens key (net.ipv4.ip_forward or net/ipv4/ip_forward) with
// flags on the calling thread's namespace. A nil procSys opens it in
// /proc. An error is the open's, as a *fs.PathError would carry it.
func (p *procSys) openSysctl(key string, flags int) (fd int, path string, err error) {
	path, err = sysctlPath(key)
	if err != nil {
		return -1, path, err
	}
	if p == nil {
		fd, err = unix.Open(path, flags|unix.O_CLOEXEC, 0)
		return fd, path, err
	}
	m := p.acquire()
	// The open file holds the mount: it may be retired and closed once
	// the file is open.
	fd, err = unix.Openat(m.fd, path[len("/proc/"):], flags|unix.O_CLOEXEC, 0)
	p.release(m)
	return fd, path, err
}

// acquire returns the mount to open in, counted as used.
func (p *procSys) acquire() *procMount {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil && !p.cur.shared && p.cur.opens >= procRefresh {
		p.retire(p.cur)
		p.cur = nil
	}
	if p.cur == nil {
		p.cur = p.mount()
	}
	p.cur.opens++
	p.cur.users++
	return p.cur
}

// release gives a mount back; a retired one no one uses is closed.
func (p *procSys) release(m *procMount) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.users--
	if m.retired && m.users == 0 {
		unix.Close(m.fd)
	}
}

// retire stops handing m out; mu is held.
func (p *procSys) retire(m *procMount) {
	m.retired = true
	if m.users == 0 {
		unix.Close(m.fd)
	}
}

// close releases the current mount (the files open in it keep theirs).
func (p *procSys) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		p.retire(p.cur)
		p.cur = nil
	}
}

// mount makes a fresh proc, or opens /proc where that is refused; mu is
// held.
func (p *procSys) mount() *procMount {
	if !p.fallback {
		if fd, err := mountProc(); err == nil {
			return &procMount{fd: fd}
		}
		p.fallback = true
	}
	fd, err := unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		// Without /proc nothing opens; the opens say so, at their path.
		fd = -1
	}
	return &procMount{fd: fd, shared: true}
}

// mountProc mounts a proc filesystem nowhere and returns its root.
// Equivalent to: `mount -t proc -o nosuid,nodev,noexec proc DIR`, with no
// DIR: the mount is attached to no path.
func mountProc() (int, error) {
	fs, err := unix.Fsopen("proc", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen proc: %w", err)
	}
	defer unix.Close(fs)
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, fmt.Errorf("fsconfig proc: %w", err)
	}
	fd, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsmount proc: %w", err)
	}
	return fd, nil
}
