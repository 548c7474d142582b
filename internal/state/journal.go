package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// DefaultRoot is where netlab keeps its journals, locks and private OVS.
// /run is a tmpfs: after a reboot every lab object is gone too, and so is the
// journal.
const DefaultRoot = "/run/netlab"

// Journal is what netlab remembers of one lab between runs. It is written
// before each object is created (intent) and after each is removed, so a crash
// at any point leaves a journal that names everything that may exist.
type Journal struct {
	Lab string `json:"lab"`
	// File is the absolute path of the topology last brought up; status uses
	// it to report drift.
	File string `json:"file,omitempty"`
	// Prefix is the --prefix the lab was brought up with.
	Prefix string `json:"prefix,omitempty"`
	// Machine is the machine of a multi-machine lab whose part this is.
	Machine string `json:"machine,omitempty"`
	// Force is set when up was allowed to attach an interface carrying the
	// host's default route.
	Force bool `json:"force,omitempty"`
	// Namespaces netlab created (or was about to create) for this lab.
	Namespaces []string `json:"namespaces,omitempty"`
	// HostLinks are links in the host namespace netlab created: bridge ports,
	// host-side veth ends, Linux bridges.
	HostLinks []string `json:"host_links,omitempty"`
	// Bridges are the OVS bridges netlab created.
	Bridges []string `json:"ovs_bridges,omitempty"`
	// HostSysctls maps each host sysctl the lab holds to the machine's value
	// before the first lab set it (see SysctlLedger: several labs may hold
	// one); the last holder's down writes it back.
	HostSysctls map[string]string `json:"host_sysctls,omitempty"`
	// HostRoutes are the routes netlab installed (or was about to) in the
	// host namespace for this lab: with the route protocol, they prove a
	// host route is this lab's, so no other route is ever replaced or
	// deleted.
	HostRoutes []Route `json:"host_routes,omitempty"`
	// NAT lists the namespaces (host included) where netlab installed the
	// lab's nftables table.
	NAT []string `json:"nat,omitempty"`
	// Loss lists the namespaces where netlab installed the lab's netdev
	// table of loss rules.
	Loss []string `json:"loss,omitempty"`
	// Qdiscs lists the namespaces where netlab made impairment qdiscs
	// (they go with their links; this says where to look for them).
	Qdiscs []string `json:"qdiscs,omitempty"`
	// Impair holds the impairments `netlab impair` set at run time, by
	// "ns/link": they stand in for the file's until reset or down.
	Impair map[string]topology.Impair `json:"impair,omitempty"`
	// External maps each host interface attached to a lab bridge to its
	// state before, which down restores.
	External map[string]ExternalState `json:"external,omitempty"`
	// AFXDPFailed maps each OVS port on which Open vSwitch could not open
	// an AF_XDP socket to its error: up fell back to a system port there,
	// and port-type auto keeps it so.
	AFXDPFailed map[string]string `json:"afxdp_failed,omitempty"`
	// DownAt is when a down of the lab started; a down that finished takes
	// the journal with it, so a set DownAt means one was interrupted: the
	// lab's processes may have been told to stop and be on their way out.
	DownAt  time.Time `json:"down_at,omitzero"`
	Updated time.Time `json:"updated"`
}

func addName(list []string, name string) []string {
	if slices.Contains(list, name) {
		return list
	}
	list = append(list, name)
	sort.Strings(list)
	return list
}

func removeName(list []string, name string) []string {
	return slices.DeleteFunc(list, func(s string) bool { return s == name })
}

// AddNamespace records a namespace about to be created.
func (j *Journal) AddNamespace(name string) { j.Namespaces = addName(j.Namespaces, name) }

// RemoveNamespace forgets a namespace that is gone.
func (j *Journal) RemoveNamespace(name string) { j.Namespaces = removeName(j.Namespaces, name) }

// AddHostLink records a host link about to be created.
func (j *Journal) AddHostLink(name string) { j.HostLinks = addName(j.HostLinks, name) }

// RemoveHostLink forgets a host link that is gone.
func (j *Journal) RemoveHostLink(name string) { j.HostLinks = removeName(j.HostLinks, name) }

// AddBridge records an OVS bridge about to be created.
func (j *Journal) AddBridge(name string) { j.Bridges = addName(j.Bridges, name) }

// RemoveBridge forgets an OVS bridge that is gone.
func (j *Journal) RemoveBridge(name string) { j.Bridges = removeName(j.Bridges, name) }

// SaveHostSysctl remembers the value a host sysctl had before netlab first
// changed it. Later changes keep the first value.
func (j *Journal) SaveHostSysctl(key, previous string) {
	if j.HostSysctls == nil {
		j.HostSysctls = map[string]string{}
	}
	if _, ok := j.HostSysctls[key]; !ok {
		j.HostSysctls[key] = previous
	}
}

// AddHostRoute records a host route about to be installed.
func (j *Journal) AddHostRoute(r Route) {
	if !slices.Contains(j.HostRoutes, r) {
		j.HostRoutes = append(j.HostRoutes, r)
	}
}

// RemoveHostRoute forgets a host route that is gone.
func (j *Journal) RemoveHostRoute(r Route) {
	j.HostRoutes = slices.DeleteFunc(j.HostRoutes, func(x Route) bool { return x == r })
}

// ExternalState is a user's interface as it was before the lab attached it.
type ExternalState struct {
	Bridge string   `json:"bridge"`
	Master string   `json:"master,omitempty"`
	Up     bool     `json:"up"`
	Addrs  []string `json:"addresses,omitempty"`
}

// AddNAT records a namespace about to get the lab's NAT table.
func (j *Journal) AddNAT(ns string) { j.NAT = addName(j.NAT, ns) }

// RemoveNAT forgets a namespace whose NAT table is gone.
func (j *Journal) RemoveNAT(ns string) { j.NAT = removeName(j.NAT, ns) }

// Empty says whether the journal names nothing that may exist.
func (j *Journal) Empty() bool {
	return len(j.Namespaces) == 0 && len(j.HostLinks) == 0 && len(j.Bridges) == 0 && len(j.HostSysctls) == 0 &&
		len(j.NAT) == 0 && len(j.External) == 0 && len(j.Loss) == 0 && len(j.HostRoutes) == 0
}

// Store is the directory of journals and locks, /run/netlab by default.
type Store struct {
	Root string
}

// NewStore returns the store at root ("" means DefaultRoot).
func NewStore(root string) *Store {
	if root == "" {
		root = DefaultRoot
	}
	return &Store{Root: root}
}

// Dir is the lab's directory: journal, and files of later features (pidfiles, logs).
func (s *Store) Dir(lab string) string { return filepath.Join(s.Root, "labs", lab) }

func (s *Store) journalPath(lab string) string { return filepath.Join(s.Dir(lab), "journal.json") }

// Load reads the lab's journal. A missing journal is an empty one, not an error.
func (s *Store) Load(lab string) (*Journal, error) {
	b, err := os.ReadFile(s.journalPath(lab))
	if errors.Is(err, fs.ErrNotExist) {
		return &Journal{Lab: lab}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal of lab %s: %w", lab, err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", s.journalPath(lab), err)
	}
	if j.Lab != lab {
		return nil, fmt.Errorf("journal %s is for lab %q", s.journalPath(lab), j.Lab)
	}
	return &j, nil
}

// Exists says whether the lab has a journal.
func (s *Store) Exists(lab string) bool {
	_, err := os.Stat(s.journalPath(lab))
	return err == nil
}

// Save writes the journal atomically (temp file + rename) and syncs it, so
// a crash never leaves half a journal.
func (s *Store) Save(j *Journal) error {
	j.Updated = time.Now().UTC()
	dir := s.Dir(j.Lab)
	if err := s.PrivateDir(dir); err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	if err := s.writeFile(s.journalPath(j.Lab), append(b, '\n')); err != nil {
		return fmt.Errorf("save journal: %w", err)
	}
	return nil
}

// writeFile replaces path with data atomically: a temp file (mode 0600)
// beside it, synced, renamed over it.
func (s *Store) writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := s.PrivateDir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Remove deletes the lab's directory once the lab is down.
func (s *Store) Remove(lab string) error {
	if err := os.RemoveAll(s.Dir(lab)); err != nil {
		return fmt.Errorf("remove journal of lab %s: %w", lab, err)
	}
	return nil
}

// Labs lists the labs that have a journal.
func (s *Store) Labs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.Root, "labs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	var labs []string
	for _, e := range entries {
		if e.IsDir() && s.Exists(e.Name()) {
			labs = append(labs, e.Name())
		}
	}
	sort.Strings(labs)
	return labs, nil
}

// Lock takes the lab's lock, waiting for another netlab working on the same
// lab to finish. The lock files live apart from the lab directory so that
// removing the lab directory on down never races with a waiting process.
// The kernel drops the lock when the process dies, so a crash never leaves a
// stale lock.
func (s *Store) Lock(lab string) (unlock func(), err error) {
	path := s.lockPath(lab)
	for {
		f, err := s.openLock(path)
		if err != nil {
			return nil, fmt.Errorf("lock lab %s: %w", lab, err)
		}
		if err := flock(f, syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock lab %s: %w", lab, err)
		}
		// down removes the lock file of a lab it took down (so lock files do
		// not pile up): a waiter that locked the removed file must start over
		// on the current one.
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

func (s *Store) lockPath(lab string) string { return filepath.Join(s.Root, "locks", lab+".lock") }

// RemoveLock removes the lab's lock file; call it while holding the lock,
// right before releasing it.
func (s *Store) RemoveLock(lab string) {
	os.Remove(s.lockPath(lab))
}

// OVSUser marks this process as a user of netlab's private OVS for as long
// as the returned function is not called: a shared flock that Down's attempt
// to stop the idle private OVS respects. Without it, down of one lab could
// stop the OVS another lab's up has just started but not yet given a bridge.
func (s *Store) OVSUser() (release func(), err error) {
	f, err := s.ovsLockFile()
	if err != nil {
		return nil, err
	}
	if err := flock(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock private ovs: %w", err)
	}
	return func() { f.Close() }, nil
}

// OVSIdle takes the private OVS lock exclusively if no netlab process uses
// it; ok is false when another one does.
func (s *Store) OVSIdle() (release func(), ok bool, err error) {
	f, err := s.ovsLockFile()
	if err != nil {
		return nil, false, err
	}
	err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock private ovs: %w", err)
	}
	return func() { f.Close() }, true, nil
}

func (s *Store) ovsLockFile() (*os.File, error) {
	f, err := s.openLock(filepath.Join(s.Root, "locks", "ovs-users.lock"))
	if err != nil {
		return nil, fmt.Errorf("lock private ovs: %w", err)
	}
	return f, nil
}

// openLock opens (creating) a lock file in the locks directory. flock needs
// only read access, so a lock file another user could open is a lock they
// could hold for ever: the directory is root's alone (0700) and the file
// 0600, whatever an older netlab left.
func (s *Store) openLock(path string) (*os.File, error) {
	if err := s.PrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := privateFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// PrivateDir makes dir (a directory under the store's root) and its missing
// parents with mode 0700, and closes an existing one to others: netlab's
// state says which namespaces, processes and devices are whose, and its
// locks must not be held by anyone else. Every level from the root down is
// closed; the root itself only when it is netlab's default one (a root
// given by a test or a caller is theirs to set).
func (s *Store) PrivateDir(dir string) error {
	if rel, err := filepath.Rel(s.Root, dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not under netlab's state directory %s", dir, s.Root)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if d == s.Root && s.Root != DefaultRoot {
			return nil
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if perm := fi.Mode() & (fs.ModePerm | fs.ModeSticky); perm&0o077 != 0 {
			if err := os.Chmod(d, perm&^0o077); err != nil {
				return err
			}
		}
		if d == s.Root || d == filepath.Dir(d) {
			return nil
		}
	}
}

// privateFile closes an open file of netlab's to others.
func privateFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return f.Chmod(fi.Mode().Perm() &^ 0o077)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
