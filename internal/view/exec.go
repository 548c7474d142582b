package view

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec replaces this process with argv in the view: it joins the network
// namespace, makes a mount namespace of its own (slave to the machine's:
// nothing mounted here reaches the machine), mounts a sysfs of the network
// namespace on /sys and binds /etc/netns/NS's files over /etc as `ip netns
// exec` does, places the view's files and directories, takes the user's
// credentials, and executes the command. It returns only when something
// failed, with the calling thread left locked (its namespaces are no longer
// the process's: the runtime discards it when the goroutine ends).
//
// The namespaces are the calling thread's until execve, which gives them to
// the whole process; so Exec must be the last thing the program does.
func Exec(s Spec, argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return ErrNoCommand
	}
	runtime.LockOSThread()
	parent := os.Getppid()
	m, err := manifestOf(s.Root)
	if err != nil {
		return err
	}
	if s.NetNS != "" {
		if err := joinNet(s.NetNS); err != nil {
			return err
		}
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("view: mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("view: make / a slave mount: %w", err)
	}
	if s.NetNS != "" {
		if err := remountSys(); err != nil {
			return err
		}
		if err := bindEtcNetns(s.NetNS); err != nil {
			return err
		}
	}
	var items []item
	if s.Hosts != "" {
		if _, err := os.Stat(s.Hosts); err == nil {
			items = append(items, item{path: "/etc/hosts", src: s.Hosts})
		}
	}
	if m != nil {
		for _, f := range m.Files {
			items = append(items, item{path: f.Path, src: filepath.Join(s.Root, "fs", f.Path)})
		}
		for _, d := range m.Dirs {
			items = append(items, item{path: d, src: filepath.Join(s.Root, "fs", d), dir: true})
		}
	}
	if len(items) > 0 {
		if err := place(s.Root, items); err != nil {
			return err
		}
	}
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	if s.User != "" {
		if env, err = becomeUser(s.User, env); err != nil {
			return err
		}
	}
	if s.DieWithParent {
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("view: parent-death signal: %w", err)
		}
		if os.Getppid() != parent {
			return fmt.Errorf("view: the process that started this one has ended")
		}
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("view: working directory: %w", err)
		}
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return err
	}
	err = syscall.Exec(path, argv, env)
	return fmt.Errorf("view: exec %s: %w", path, err)
}

func manifestOf(root string) (*Manifest, error) {
	if root == "" {
		return nil, nil
	}
	m, err := ReadManifest(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return m, err
}

// joinNet moves the calling thread into the named network namespace.
func joinNet(name string) error {
	fd, err := unix.Open(filepath.Join("/run/netns", name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("view: namespace %s: %w", name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("view: join namespace %s: %w", name, err)
	}
	return nil
}

// remountSys mounts a sysfs of this network namespace on /sys, so
// /sys/class/net shows its devices, as `ip netns exec` does.
func remountSys() error {
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("view: unmount /sys: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("view: mount sysfs: %w", err)
	}
	return nil
}

// bindEtcNetns binds each file of /etc/netns/NS over /etc's, as `ip netns
// exec` does (the user's own per-namespace files, such as resolv.conf).
func bindEtcNetns(name string) error {
	dir := filepath.Join("/etc/netns", name)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("view: %w", err)
	}
	for _, e := range ents {
		if err := unix.Mount(filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name()), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("view: bind %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	return nil
}

// item is one path of the view: a file or a directory of the lab's state
// (src) placed at path.
type item struct {
	path, src string
	dir       bool
}

// place puts the view's files and directories over the machine's paths.
// Where the machine has the path, the view's file (or directory) is bound
// over it. Where it does not, the nearest directory it has is overlaid
// (the machine's content below, a scratch tmpfs of this process's above),
// the path made in the overlay, and the view's bound there: the machine is
// never written.
func place(root string, items []item) error {
	// The sources are reached through descriptors taken now: once an
	// overlay covers a directory they lie in (/run), their paths lead into
	// the overlay, whose copies are this process's alone, not the files
	// every program of the namespace shares.
	srcs := make([]string, len(items))
	for i, it := range items {
		fd, err := unix.Open(it.src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("view: %s: %w", it.src, err)
		}
		defer unix.Close(fd)
		srcs[i] = fmt.Sprintf("/proc/thread-self/fd/%d", fd)
	}
	// The directories to overlay: the nearest existing ancestor of each
	// path the machine lacks, the shallowest of nested ones.
	var overlays []string
	for _, it := range items {
		if _, err := os.Lstat(it.path); err == nil {
			continue
		}
		a := filepath.Dir(it.path)
		for {
			if fi, err := os.Stat(a); err == nil && fi.IsDir() {
				break
			}
			a = filepath.Dir(a)
		}
		overlays = append(overlays, a)
	}
	overlays = shallowest(overlays)
	if len(overlays) > 0 {
		if root == "" {
			return fmt.Errorf("view: %s is not on this machine, and the view has no directory of its own", overlays[0])
		}
		scratch := filepath.Join(root, "scratch")
		if err := os.MkdirAll(scratch, 0o700); err != nil {
			return fmt.Errorf("view: %w", err)
		}
		if err := unix.Mount("netlab-view", scratch, "tmpfs", 0, "mode=0700"); err != nil {
			return fmt.Errorf("view: scratch tmpfs: %w", err)
		}
		// The scratch tmpfs is reached through a descriptor: once an overlay
		// covers a directory it lies in (/run), its path leads into the
		// overlay instead.
		fd, err := unix.Open(scratch, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("view: scratch tmpfs: %w", err)
		}
		defer unix.Close(fd)
		for i := range overlays {
			for _, d := range []string{"upper", "work"} {
				if err := os.MkdirAll(filepath.Join(scratch, strconv.Itoa(i), d), 0o755); err != nil {
					return fmt.Errorf("view: %w", err)
				}
			}
		}
		held := fmt.Sprintf("/proc/thread-self/fd/%d", fd)
		for i, a := range overlays {
			upper := filepath.Join(held, strconv.Itoa(i), "upper")
			work := filepath.Join(held, strconv.Itoa(i), "work")
			// The upper directory takes the lower one's mode and owner, so
			// the overlay's root looks as the machine's does.
			if fi, err := os.Stat(a); err == nil {
				os.Chmod(upper, fi.Mode().Perm())
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					os.Lchown(upper, int(st.Uid), int(st.Gid))
				}
			}
			opts := "lowerdir=" + a + ",upperdir=" + upper + ",workdir=" + work
			if err := unix.Mount("netlab-view", a, "overlay", 0, opts); err != nil {
				return fmt.Errorf("view: overlay %s: %w", a, err)
			}
		}
	}
	for i, it := range items {
		fi, err := os.Lstat(it.path)
		switch {
		case err != nil && it.dir:
			err = os.MkdirAll(it.path, 0o755)
		case err != nil:
			if err = os.MkdirAll(filepath.Dir(it.path), 0o755); err == nil {
				err = os.WriteFile(it.path, nil, 0o644)
			}
		case it.dir && !fi.IsDir():
			err = fmt.Errorf("the machine has a file there, not a directory")
		case !it.dir && fi.IsDir():
			err = fmt.Errorf("the machine has a directory there, not a file")
		}
		if err != nil {
			return fmt.Errorf("view: place %s: %w", it.path, err)
		}
		if err := unix.Mount(srcs[i], it.path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("view: bind %s: %w", it.path, err)
		}
	}
	return nil
}

// shallowest keeps the directories none of the others contain, sorted.
func shallowest(dirs []string) []string {
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(out, func(o string) bool { return o == "/" || strings.HasPrefix(d, o+"/") }) {
			out = append(out, d)
		}
	}
	return out
}

// becomeUser takes the credentials of a user (a name or a uid) as the
// view's /etc/passwd says, and sets HOME, USER and LOGNAME in env.
func becomeUser(name string, env []string) ([]string, error) {
	var u *user.User
	var err error
	if _, nerr := strconv.Atoi(name); nerr == nil {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("view: user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []int
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return nil, fmt.Errorf("view: user %s: groups: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return nil, fmt.Errorf("view: user %s: gid: %w", name, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return nil, fmt.Errorf("view: user %s: uid: %w", name, err)
	}
	env = setEnv(env, "HOME", u.HomeDir)
	env = setEnv(env, "USER", u.Username)
	return setEnv(env, "LOGNAME", u.Username), nil
}

func setEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}

// lookPath finds the program as the command's PATH says.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("view: %s: %w", name, exec.ErrNotFound)
}
