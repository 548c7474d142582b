package privilege

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/testkit"
)

func TestElevation(t *testing.T) {
	const caps = 1<<12 | 1<<13 | 1<<21 // CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN
	user := credentials{secureKnown: true, ruid: 1000, euid: 1000, suid: 1000, rgid: 100, egid: 100, sgid: 100}
	with := func(f func(*credentials)) credentials {
		c := user
		f(&c)
		return c
	}
	for _, c := range []struct {
		name string
		c    credentials
		want *Elevation
	}{
		{"a user's plain binary", user, nil},
		{"file capabilities", with(func(c *credentials) { c.secure, c.permitted = true, caps }),
			&Elevation{UID: 1000, Capabilities: true}},
		{"setuid root", with(func(c *credentials) { c.secure, c.euid, c.suid, c.permitted = true, 0, 0, ^uint64(0) }),
			&Elevation{UID: 1000, Capabilities: true, SetID: true}},
		{"setgid", with(func(c *credentials) { c.secure, c.egid, c.sgid = true, 42, 42 }),
			&Elevation{UID: 1000, SetID: true}},
		// Root's process is root's, whatever the binary.
		{"root, file capabilities", with(func(c *credentials) { c.ruid, c.euid, c.suid, c.secure, c.permitted = 0, 0, 0, true, caps }), nil},
		{"root, setgid", with(func(c *credentials) { c.ruid, c.euid, c.suid, c.secure, c.egid = 0, 0, 0, true, 42 }), nil},
		// Ambient capabilities root gave the process (no AT_SECURE) stay.
		{"ambient capabilities", with(func(c *credentials) { c.permitted = caps }), nil},
		// AT_SECURE from a security module's transition: nothing to shed.
		{"secure, nothing given", with(func(c *credentials) { c.secure = true }), nil},
		// No auxiliary vector: any privilege of a user's process goes.
		{"unknown, capabilities", with(func(c *credentials) { c.secureKnown, c.permitted = false, caps }),
			&Elevation{UID: 1000, Capabilities: true}},
		{"unknown, nothing", with(func(c *credentials) { c.secureKnown = false }), nil},
	} {
		if got := c.c.elevation(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: elevation %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSecureFromAuxv(t *testing.T) {
	for _, c := range []struct {
		auxv          [][2]uintptr
		secure, known bool
	}{
		{[][2]uintptr{{6, 4096}, {23, 1}, {25, 0x7ffd}}, true, true}, // AT_PAGESZ, AT_SECURE, AT_RANDOM
		{[][2]uintptr{{6, 4096}, {23, 0}}, false, true},
		{[][2]uintptr{{6, 4096}}, false, false},
		{nil, false, false},
	} {
		if s, k := secureFromAuxv(c.auxv); s != c.secure || k != c.known {
			t.Errorf("%v: secure %v known %v, want %v %v", c.auxv, s, k, c.secure, c.known)
		}
	}
}

// TestNotice: the line names the binary and the user, and says where their
// labs are.
func TestNotice(t *testing.T) {
	caps := (&Elevation{UID: 1000, Capabilities: true}).Notice("/usr/local/bin/netlab")
	want := "the file capabilities of /usr/local/bin/netlab are not used for uid 1000: they would let any user reach every lab on this machine; your labs live in your sandbox (netlab doctor)"
	if caps != want {
		t.Errorf("notice:\n%s\nwant\n%s", caps, want)
	}
	if s := (&Elevation{UID: 7, SetID: true, Capabilities: true}).Notice("/x/netlab"); !strings.HasPrefix(s, "the setuid/setgid bit of /x/netlab is not used for uid 7: it would") {
		t.Errorf("set-id notice: %s", s)
	}
}

func TestUnprivileged(t *testing.T) {
	good := map[string]string{"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapInh": "0000000000000000",
		"CapAmb": "0000000000000000", "NoNewPrivs": "1", "Uid": "1000\t1000\t1000\t1000", "Gid": "100\t100\t100\t100"}
	if err := unprivileged(good, 1000, 100); err != nil {
		t.Errorf("a shed thread: %v", err)
	}
	for k, v := range map[string]string{"CapEff": "0000000000001000", "CapPrm": "000001ffffffffff", "CapAmb": "", "NoNewPrivs": "0",
		"Uid": "1000\t0\t0\t0", "Gid": "100\t42\t42\t42"} {
		bad := map[string]string{}
		for k, v := range good {
			bad[k] = v
		}
		bad[k] = v
		if err := unprivileged(bad, 1000, 100); err == nil {
			t.Errorf("%s %q passed", k, v)
		}
	}
}

// TestShedNothing: a process nothing elevated (this test's, root's or not)
// keeps what it has.
func TestShedNothing(t *testing.T) {
	before, err := readStatus("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Shed()
	if err != nil || e != nil {
		t.Fatalf("Shed: %+v, %v", e, err)
	}
	after, err := readStatus("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"CapEff", "CapPrm", "NoNewPrivs", "Uid", "Gid"} {
		if before[k] != after[k] {
			t.Errorf("%s: %q, was %q", k, after[k], before[k])
		}
	}
}

// childEnv makes the test binary run child instead of its tests; childCat
// names a program the child runs after the shed.
const (
	childEnv = "NETLAB_PRIVILEGE_TEST_CHILD"
	childCat = "NETLAB_PRIVILEGE_TEST_CAT"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// report is what the child prints: what Shed said, every thread's status
// after it, and the status of a program it ran then.
type report struct {
	Elevation *Elevation
	Err       string
	Threads   []map[string]string
	Dumpable  int
	Exec      map[string]string
}

// child is the test binary started again, elevated, as a user: it sheds
// with threads besides its own alive (each locked to a goroutine that
// waits), as netlab's main does among the runtime's threads.
func child() int {
	release := make(chan struct{})
	var started sync.WaitGroup
	for i := 0; i < 8; i++ {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	var r report
	e, err := Shed()
	r.Elevation = e
	if err != nil {
		r.Err = err.Error()
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, path := range tasks {
		if st, err := readStatus(path); err == nil {
			r.Threads = append(r.Threads, st)
		}
	}
	close(release)
	r.Dumpable, _ = unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if cat := os.Getenv(childCat); cat != "" {
		out, err := exec.Command(cat, "/proc/self/status").Output()
		if err != nil {
			r.Err += fmt.Sprintf("; %s: %v", cat, err)
		}
		r.Exec = parseStatus(string(out))
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// copyTo copies prog into a fresh directory everyone may read, as mode.
func copyTo(t *testing.T, prog string, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-privilege-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src, err := os.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, filepath.Base(prog))
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err == nil {
		_, err = io.Copy(dst, src)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(path, mode) // after the write, which would clear set-id bits
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestShedElevated runs this test binary, given file capabilities or a
// setuid-root bit, as uid 65534 (and as root), and checks what the child
// reports: every thread of the user's process has shed everything and has
// no_new_privs, the process is dumpable again, and a program with file
// capabilities it runs gets none of them; root's process is untouched.
// setpriv plays the user: it drops root's capabilities with its uid but
// keeps the bounding set, as a login does.
func TestShedElevated(t *testing.T) {
	testkit.RequireRoot(t, "setcap, setuid files, setpriv", "setcap", "setpriv", "cat")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	catPath, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	capped := copyTo(t, exe, 0o755)
	testkit.Run(t, "setcap", "cap_net_admin,cap_sys_admin,cap_net_raw+ep", capped)
	setuid := copyTo(t, exe, os.ModeSetuid|0o755)
	cat := copyTo(t, catPath, 0o755)
	testkit.Run(t, "setcap", "cap_net_admin,cap_sys_admin,cap_net_raw+ep", cat)
	const capEff = "0000000000203000" // the three capabilities
	asUser := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"}

	run := func(t *testing.T, argv ...string) report {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), childEnv+"=1", childCat+"="+cat)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		var r report
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		if r.Err != "" {
			t.Fatalf("%v: %s", argv, r.Err)
		}
		if len(r.Threads) < 9 {
			t.Errorf("%d threads, want the 8 waiting ones and the shedding one at least", len(r.Threads))
		}
		return r
	}
	shed := func(t *testing.T, r report) {
		t.Helper()
		for _, st := range r.Threads {
			if err := unprivileged(st, 65534, 65534); err != nil {
				t.Errorf("thread %s: %v", st["Pid"], err)
			}
		}
		if r.Dumpable != 1 {
			t.Errorf("dumpable %d, want 1", r.Dumpable)
		}
		if r.Exec["CapEff"] != "0000000000000000" || r.Exec["CapPrm"] != "0000000000000000" || r.Exec["NoNewPrivs"] != "1" {
			t.Errorf("a capped program run after the shed got capabilities: CapEff %s CapPrm %s NoNewPrivs %s",
				r.Exec["CapEff"], r.Exec["CapPrm"], r.Exec["NoNewPrivs"])
		}
	}

	t.Run("the ground: a capped program run by the user gets its capabilities", func(t *testing.T) {
		out := testkit.Run(t, append(asUser, cat, "/proc/self/status")...)
		if st := parseStatus(out); st["CapEff"] != capEff {
			t.Fatalf("CapEff %q, want %s: this machine does not grant file capabilities here", st["CapEff"], capEff)
		}
	})
	t.Run("file capabilities, a user", func(t *testing.T) {
		r := run(t, append(asUser, capped)...)
		if want := (&Elevation{UID: 65534, Capabilities: true}); !reflect.DeepEqual(r.Elevation, want) {
			t.Errorf("elevation %+v, want %+v", r.Elevation, want)
		}
		shed(t, r)
	})
	t.Run("setuid root, a user", func(t *testing.T) {
		r := run(t, append(asUser, setuid)...)
		if want := (&Elevation{UID: 65534, Capabilities: true, SetID: true}); !reflect.DeepEqual(r.Elevation, want) {
			t.Errorf("elevation %+v, want %+v", r.Elevation, want)
		}
		shed(t, r)
	})
	t.Run("no elevation, a user", func(t *testing.T) {
		r := run(t, append(asUser, copyTo(t, exe, 0o755))...)
		if r.Elevation != nil || r.Threads[0]["NoNewPrivs"] != "0" || r.Exec["CapEff"] != capEff {
			t.Errorf("a plain binary changed something: elevation %+v, NoNewPrivs %s, CapEff of a capped program %s",
				r.Elevation, r.Threads[0]["NoNewPrivs"], r.Exec["CapEff"])
		}
	})
	t.Run("file capabilities, root", func(t *testing.T) {
		r := run(t, capped)
		if r.Elevation != nil || r.Threads[0]["NoNewPrivs"] != "0" || r.Threads[0]["Uid"] != "0\t0\t0\t0" {
			t.Errorf("root's process changed: elevation %+v, NoNewPrivs %s, Uid %s",
				r.Elevation, r.Threads[0]["NoNewPrivs"], r.Threads[0]["Uid"])
		}
	})
}
