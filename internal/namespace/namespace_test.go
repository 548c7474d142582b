package namespace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireRoot: see testkit.RequireRoot.
func requireRoot(t *testing.T) { t.Helper(); testkit.RequireRoot(t, "namespaces") }

// testName returns a unique throw-away name: "nlk" and 4 random hex digits.
func testName(t *testing.T) string {
	t.Helper()
	return testkit.Name(t, "nlk", 4)
}

// newTestNS creates a namespace that is deleted when the test ends.
func newTestNS(t *testing.T) string {
	t.Helper()
	name := testName(t)
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

func inode(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino
}

func TestCreateDeleteIdempotent(t *testing.T) {
	requireRoot(t)
	name := testName(t)
	t.Cleanup(func() { Delete(name) })

	if Exists(name) {
		t.Fatalf("%s exists before Create", name)
	}
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if !Exists(name) {
		t.Fatalf("%s missing after Create", name)
	}
	names, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, name) || !slices.IsSorted(names) {
		t.Fatalf("List() = %v, want sorted and containing %s", names, name)
	}
	err = Create(name)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: got %v, want fs.ErrExist", err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Errorf("error %q does not name the namespace", err)
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if err := Delete(name); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if Exists(name) {
		t.Fatalf("%s exists after Delete", name)
	}
	if _, err := os.Stat(Path(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file left behind: %v", err)
	}
}

func TestCreateConcurrent(t *testing.T) {
	requireRoot(t)
	var names []string
	for range 4 {
		n := testName(t)
		names = append(names, n)
		t.Cleanup(func() { Delete(n) })
	}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() { errs[i] = Create(n) })
	}
	wg.Wait()
	for i, n := range names {
		if errs[i] != nil {
			t.Errorf("Create(%s): %v", n, errs[i])
		}
		if !Exists(n) {
			t.Errorf("%s missing", n)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "host"} {
		if err := Create(name); err == nil {
			t.Errorf("Create(%q) succeeded", name)
		}
		if err := Delete(name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
	}
}

func TestStaleFileIsNotANamespace(t *testing.T) {
	requireRoot(t)
	if err := prepareDir(); err != nil {
		t.Fatal(err)
	}
	name := testName(t)
	t.Cleanup(func() { Delete(name) })
	// What an interrupted Create leaves: the file without the mount.
	if err := os.WriteFile(Path(name), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if Exists(name) {
		t.Error("Exists is true for a plain file")
	}
	if h, err := Open(name); err == nil {
		h.Close()
		t.Error("Open succeeded on a plain file")
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(Path(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left the file: %v", err)
	}
}

func TestDoRunsInNamespace(t *testing.T) {
	requireRoot(t)
	name := newTestNS(t)
	wantDev, wantIno := inode(t, Path(name))
	hostDev, hostIno := inode(t, "/proc/self/ns/net")

	h, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	for range 20 { // many runs: threads are reused after a clean switch back
		var gotDev, gotIno uint64
		err = Do(h, func() error {
			var st unix.Stat_t
			if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
				return err
			}
			gotDev, gotIno = st.Dev, st.Ino
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if gotDev != wantDev || gotIno != wantIno {
			t.Fatalf("Do ran in %d:%d, want %d:%d", gotDev, gotIno, wantDev, wantIno)
		}
	}
	if d, i := inode(t, "/proc/thread-self/ns/net"); d != hostDev || i != hostIno {
		t.Fatal("test goroutine's thread left the host namespace")
	}

	host, err := Open(Host)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	err = Do(host, func() error {
		d, i := inode(t, "/proc/thread-self/ns/net")
		if d != hostDev || i != hostIno {
			t.Error(`Open("host") is not the root namespace`)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDoErrors(t *testing.T) {
	requireRoot(t)
	if err := Do(netns.None(), func() error { t.Error("fn ran"); return nil }); err == nil {
		t.Error("Do on a closed handle succeeded")
	}
	// A file that is not a namespace: setns fails with EINVAL.
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Do(netns.NsHandle(f.Fd()), func() error { t.Error("fn ran"); return nil })
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("Do on /dev/null: got %v, want EINVAL", err)
	}

	name := newTestNS(t)
	h, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sentinel := errors.New("sentinel")
	if err := Do(h, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("fn error lost: %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		Do(h, func() error { panic("boom") })
		t.Error("Do did not re-raise the panic")
	}()
	if _, err := Open("nlk-absent-zz"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of an absent namespace: got %v, want fs.ErrNotExist", err)
	}
}

func TestPidsIn(t *testing.T) {
	testkit.RequireRoot(t, "namespaces", "sleep")
	name := newTestNS(t)
	h, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	pids, err := PidsIn([]string{name, "nlk-absent-zz"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pids[name]) != 0 || len(pids) != 0 {
		t.Fatalf("fresh namespace has processes %v", pids)
	}

	// exec from inside Do: the child inherits the switched thread's namespace.
	cmd := exec.Command("sleep", "60")
	if err := Do(h, cmd.Start); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})

	pids, err = PidsIn([]string{name, "nlk-absent-zz"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids[name], []int{pid}) || len(pids) != 1 {
		t.Fatalf("PidsIn(%s) = %v, want [%d] for it alone", name, pids, pid)
	}
}

// threadsIn lists the process's threads whose network namespace is the
// file at path.
func threadsIn(t *testing.T, path string) []string {
	t.Helper()
	dev, ino := inode(t, path)
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat("/proc/self/task/"+e.Name()+"/ns/net", &st) == nil && st.Dev == dev && st.Ino == ino {
			in = append(in, e.Name())
		}
	}
	return in
}

// Create and Do keep their threads: many calls, one after the other, run
// on a few threads (a thread made and destroyed per namespace cost more
// than the namespace's own setns calls), and once idle no thread is left
// inside a namespace, so deleting its name frees it.
func TestThreadsReusedAndGoHome(t *testing.T) {
	requireRoot(t)
	tids := map[int]bool{}
	var names []string
	for range 30 {
		name := testName(t)
		t.Cleanup(func() { Delete(name) })
		if err := CreateWith(name, func() error { tids[unix.Gettid()] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	for _, name := range names {
		h, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := Do(h, func() error { tids[unix.Gettid()] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		h.Close()
	}
	if len(tids) > 4 {
		t.Errorf("30 Creates and 30 Dos, one after the other, ran on %d threads", len(tids))
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, name := range names {
		for {
			in := threadsIn(t, Path(name))
			if len(in) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("threads %v still in %s after Do returned", in, name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// CreateWith runs its function inside the namespace it made, on the
// thread that made it, and a function's error leaves the namespace made.
func TestCreateWith(t *testing.T) {
	requireRoot(t)
	name := testName(t)
	t.Cleanup(func() { Delete(name) })
	var inside uint64
	err := CreateWith(name, func() error {
		var st unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
			return err
		}
		inside = st.Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ino := inode(t, Path(name)); ino != inside {
		t.Errorf("fn ran in namespace %d, not the new one %d", inside, ino)
	}
	other := testName(t)
	t.Cleanup(func() { Delete(other) })
	sentinel := errors.New("sentinel")
	if err := CreateWith(other, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("fn's error: %v", err)
	}
	if !Exists(other) {
		t.Error("a failing fn removed the namespace it ran in")
	}
}

// Do may be called from inside Do (a new thread takes the inner call), and
// many at once each run in their own namespace.
func TestDoNestedAndConcurrent(t *testing.T) {
	requireRoot(t)
	a, b := newTestNS(t), newTestNS(t)
	ha, err := Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ha.Close()
	hb, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	_, inoA := inode(t, Path(a))
	_, inoB := inode(t, Path(b))
	where := func() uint64 {
		var st unix.Stat_t
		unix.Stat("/proc/thread-self/ns/net", &st)
		return st.Ino
	}
	err = Do(ha, func() error {
		if got := where(); got != inoA {
			return fmt.Errorf("outer in %d, want %d", got, inoA)
		}
		if err := Do(hb, func() error {
			if got := where(); got != inoB {
				return fmt.Errorf("inner in %d, want %d", got, inoB)
			}
			return nil
		}); err != nil {
			return err
		}
		if got := where(); got != inoA {
			return fmt.Errorf("outer moved to %d after the inner call", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		h, want := ha, inoA
		if i%2 == 1 {
			h, want = hb, inoB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Do(h, func() error {
				if got := where(); got != want {
					return fmt.Errorf("ran in %d, want %d", got, want)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// CreateEach makes each namespace, one thread going from one to the next,
// and says which could not be made; Visit enters each in turn, and says
// which does not exist.
func TestCreateEachAndVisit(t *testing.T) {
	requireRoot(t)
	taken := newTestNS(t)
	names := []string{testName(t), taken, testName(t), testName(t)}
	for _, n := range names {
		t.Cleanup(func() {
			if n != taken {
				Delete(n)
			}
		})
	}
	tids := map[int]bool{}
	inside := make([]uint64, len(names))
	errs := CreateEach(names, func(i int) error {
		tids[unix.Gettid()] = true
		_, inside[i] = inode(t, "/proc/thread-self/ns/net")
		return nil
	})
	for i, err := range errs {
		switch {
		case names[i] == taken && !errors.Is(err, fs.ErrExist):
			t.Errorf("%s (taken): %v, want fs.ErrExist", names[i], err)
		case names[i] != taken && err != nil:
			t.Errorf("%s: %v", names[i], err)
		case names[i] != taken:
			if _, ino := inode(t, Path(names[i])); ino != inside[i] {
				t.Errorf("%s: fn ran in %d, the namespace is %d", names[i], inside[i], ino)
			}
		}
	}
	if len(tids) != 1 {
		t.Errorf("CreateEach ran on %d threads", len(tids))
	}
	absent := testName(t)
	visit := append(names[:len(names):len(names)], absent)
	seen := make([]uint64, len(visit))
	errs = Visit(visit, func(i int) error {
		_, seen[i] = inode(t, "/proc/thread-self/ns/net")
		return nil
	})
	for i, name := range visit {
		if name == absent {
			if !errors.Is(errs[i], fs.ErrNotExist) {
				t.Errorf("Visit of an absent namespace: %v", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("Visit %s: %v", name, errs[i])
			continue
		}
		if _, ino := inode(t, Path(name)); ino != seen[i] {
			t.Errorf("Visit %s ran in %d, want %d", name, seen[i], ino)
		}
	}
}
