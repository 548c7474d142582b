// Package store keeps netlab's files under its state root (/run/netlab, or
// a sandbox's own): each lab's journal, the locks that serialise netlab
// processes, and the machine's ledger of host sysctls. Every directory it
// makes is 0700 and every file 0600: the state says which namespaces,
// processes and devices are whose, and a lock another user could open is
// one they could hold.
package store

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

	"github.com/netlab-dev/netlab/internal/state"
)

// DefaultRoot is where netlab keeps its journals, locks and private OVS.
// /run is a tmpfs: after a reboot every lab object is gone too, and so is the
// journal.
const DefaultRoot = "/run/netlab"

// Store is the directory of journals and locks, /run/netlab by default.
type Store struct {
	Root string
}

// New returns the store at root ("" means DefaultRoot).
func New(root string) *Store {
	if root == "" {
		root = DefaultRoot
	}
	return &Store{Root: root}
}

// Dir is the lab's directory: journal, and files of later features (pidfiles, logs).
func (s *Store) Dir(lab string) string { return filepath.Join(s.Root, "labs", lab) }

// ViewDir is where a lab namespace's view of files lives (internal/view).
func (s *Store) ViewDir(lab, ns string) string { return filepath.Join(s.Dir(lab), "view", ns) }

// HostsFile is the lab's hosts file, which every namespace's programs see
// as /etc/hosts.
func (s *Store) HostsFile(lab string) string { return filepath.Join(s.Dir(lab), "hosts") }

func (s *Store) journalPath(lab string) string { return filepath.Join(s.Dir(lab), "journal.json") }

// Load reads the lab's journal. A missing journal is an empty one, not an error.
func (s *Store) Load(lab string) (*state.Journal, error) {
	b, err := os.ReadFile(s.journalPath(lab))
	if errors.Is(err, fs.ErrNotExist) {
		return &state.Journal{Lab: lab}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal of lab %s: %w", lab, err)
	}
	var j state.Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", s.journalPath(lab), err)
	}
	if j.Lab != lab {
		return nil, fmt.Errorf("journal %s is for lab %q", s.journalPath(lab), j.Lab)
	}
	// Kept sorted (state's lists are searched), whoever wrote the file.
	slices.Sort(j.Namespaces)
	slices.Sort(j.HostLinks)
	slices.Sort(j.Bridges)
	return &j, nil
}

// Exists says whether the lab has a journal.
func (s *Store) Exists(lab string) bool {
	_, err := os.Stat(s.journalPath(lab))
	return err == nil
}

// Save writes the journal atomically (temp file + rename) and syncs it, so
// a crash never leaves half a journal.
func (s *Store) Save(j *state.Journal) error {
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
		if err := Flock(f, syscall.LOCK_EX); err != nil {
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
	if err := Flock(f, syscall.LOCK_SH); err != nil {
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
	err = Flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
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

// Flock takes (or tries, with LOCK_NB) an flock on f, again when a signal
// interrupts the wait.
func Flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func (s *Store) ledgerPath() string { return filepath.Join(s.Root, "host-sysctls.json") }

// ReadSysctls reads the ledger without locking it: what the labs held when
// it was last written, for planning. Changes go through Sysctls.
func (s *Store) ReadSysctls() (*state.SysctlLedger, error) {
	l := &state.SysctlLedger{Keys: map[string]*state.HeldSysctl{}}
	b, err := os.ReadFile(s.ledgerPath())
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host sysctl ledger: %w", err)
	}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("read host sysctl ledger %s: %w", s.ledgerPath(), err)
	}
	if l.Keys == nil {
		l.Keys = map[string]*state.HeldSysctl{}
	}
	l.ForgetGone(s.Exists)
	return l, nil
}

// Sysctls runs change on the ledger under its lock and saves what change
// left (nothing is saved when change fails). The kernel write belongs
// inside change, so that the decision to restore a value and the write are
// one step no other lab's up or down can come between.
func (s *Store) Sysctls(change func(l *state.SysctlLedger) error) error {
	f, err := s.openLock(filepath.Join(s.Root, "locks", "host-sysctls.lock"))
	if err != nil {
		return fmt.Errorf("lock host sysctl ledger: %w", err)
	}
	defer f.Close()
	if err := Flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock host sysctl ledger: %w", err)
	}
	l, err := s.ReadSysctls()
	if err != nil {
		return err
	}
	if err := change(l); err != nil {
		return err
	}
	if len(l.Keys) == 0 {
		if err := os.Remove(s.ledgerPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove host sysctl ledger: %w", err)
		}
		return nil
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save host sysctl ledger: %w", err)
	}
	return s.writeFile(s.ledgerPath(), append(b, '\n'))
}
