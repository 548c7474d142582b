package netlabtest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func namespaces(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}

// Two copies of one file in parallel tests, each with its own prefix.
func TestParallelLabs(t *testing.T) {
	RequireRoot(t)
	var prefixes = make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"one", "two"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				lab := Up(t, "testdata/pair.yaml")
				prefixes <- lab.Prefix()
				lab.Ping(t, "a", "b")
				lab.Ping(t, "b", lab.Addr("a", "p2p"))
				out := lab.Exec(t, "a", "ip", "-br", "addr", "show", "eth0")
				if !strings.Contains(out, "192.168.77.1/24") {
					t.Errorf("eth0 in %s: %s", lab.NS("a"), out)
				}
				// Go code inside the namespace: a TCP server in b, a client in a.
				ln, err := lab.Listen("b", "tcp", "192.168.77.2:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					defer c.Close()
					line, _ := bufio.NewReader(c).ReadString('\n')
					c.Write([]byte("echo " + line))
				}()
				c, err := lab.Dial("a", "tcp", ln.Addr().String(), 3*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte("hello\n"))
				reply, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || reply != "echo hello\n" {
					t.Errorf("reply %q, %v", reply, err)
				}
				// Do runs in the namespace: its interfaces are the lab's.
				var ifaces string
				if err := lab.Do("a", func() error {
					out, err := exec.Command("ip", "-br", "link").Output()
					ifaces = string(out)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(ifaces, "p2p") {
					t.Errorf("Do did not run inside %s: %s", lab.NS("a"), ifaces)
				}
				st, err := lab.Status()
				if err != nil || len(st.Drift) != 0 || st.DriftError != "" {
					t.Errorf("status: %+v %v", st, err)
				}
			})
		}
	})
	close(prefixes)
	list := namespaces(t)
	var seen []string
	for p := range prefixes {
		seen = append(seen, p)
		if strings.Contains(list, p+"a") {
			t.Errorf("lab %s left namespaces after its test:\n%s", p, list)
		}
	}
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Errorf("prefixes %v: want two distinct", seen)
	}
}

// fakeT lets a test see Up's cleanup run after a failure.
type fakeT struct {
	*testing.T
	failed   bool
	cleanups []func()
}

func (f *fakeT) Cleanup(fn func())               { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Failed() bool                    { return f.failed }
func (f *fakeT) Logf(format string, args ...any) { f.T.Logf(format, args...) }
func (f *fakeT) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// A failed test's lab is removed, unless keep mode is on: then it stays, and
// the log says how to enter and remove it.
func TestCleanupAfterFailureAndKeep(t *testing.T) {
	RequireRoot(t)
	ft := &fakeT{T: t}
	lab := Up(ft, "testdata/pair.yaml")
	ft.failed = true
	ft.runCleanups()
	if strings.Contains(namespaces(t), lab.NS("a")) {
		t.Fatalf("failed test's lab %s not removed", lab.Name())
	}

	kt := &fakeT{T: t}
	kept := Up(kt, "testdata/pair.yaml", WithKeep(true))
	kt.failed = true
	kt.runCleanups()
	if !strings.Contains(namespaces(t), kept.NS("a")) {
		t.Fatalf("keep mode removed lab %s", kept.Name())
	}
	// Remove it ourselves, as the log tells a user to.
	if _, err := kept.eng.Down(kept.Name()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(namespaces(t), kept.NS("a")) {
		t.Fatalf("kept lab %s not removed by down", kept.Name())
	}
}

func TestWithPrefix(t *testing.T) {
	RequireRoot(t)
	lab := Up(t, "testdata/pair.yaml", WithPrefix("zz9-"))
	if lab.NS("a") != "zz9-a" || lab.Name() != "zz9-pair" {
		t.Errorf("NS(a) = %s, Name = %s", lab.NS("a"), lab.Name())
	}
	lab.Ping(t, "a", "192.168.77.2")
}

// TestMain runs the tests in a sandbox, with a netlab binary for the
// programs of their labs; started by a test as a lab's program (Start),
// the binary is that program instead.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == helperArg {
		os.Exit(helper(os.Args[2:]))
	}
	Main(m, BuildNetlab())
}
