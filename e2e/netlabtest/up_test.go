package netlabtest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/topology"
)

// duo is a lab of two namespaces on one veth, written in the test.
const duo = `
name: duo
namespaces:
  a:
    interfaces:
      p2p: {peer: b/p2p, addresses: [192.168.79.1/30]}
  b:
    interfaces:
      p2p: {addresses: [192.168.79.2/30]}
`

// A lab written in the test places a file read from beside the test: b's
// programs read it; netlab reads the lab's file again (side file included)
// without drift, and impairs the lab.
func TestUpStringWithSideFile(t *testing.T) {
	want, err := os.ReadFile("testdata/greeting.txt")
	if err != nil {
		t.Fatal(err)
	}
	lab := UpString(t, duo+`
    files:
      /etc/netlabtest/greeting: {from: testdata/greeting.txt}
`)
	if got := lab.Exec(t, "b", "cat", "/etc/netlabtest/greeting"); got != string(want) {
		t.Errorf("/etc/netlabtest/greeting in b: %q, want %q", got, want)
	}
	lab.Exec(t, "a", "ping", "-c1", "-W2", "b")
	st, err := lab.Status()
	if err != nil || len(st.Drift) != 0 || st.DriftError != "" {
		t.Errorf("status of an inline lab: drift %v, %q, %v", st.Drift, st.DriftError, err)
	}
	lab.Impair(t, "a", "p2p", Rate(50_000_000))
	if im := lab.Impairment(t, "a", "p2p"); im.Rate != 50_000_000 {
		t.Errorf("a/p2p impairment %s, want rate 50mbit", im)
	}
}

// builtLab is a lab built in Go as a user would: only what its file would
// say (one peer per link, nothing Parse derives).
func builtLab(name string) *topology.Lab {
	p2p := func(peer string, addr string) *topology.Interface {
		i := &topology.Interface{Name: "p2p", Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}
		if peer != "" {
			i.Peer = topology.End{NS: peer, Name: "p2p"}
		}
		return i
	}
	return &topology.Lab{
		Name: name,
		Namespaces: []*topology.Namespace{
			{Name: "a", Interfaces: []*topology.Interface{p2p("b", "192.168.75.1/30")}},
			{Name: "b", Interfaces: []*topology.Interface{p2p("", "192.168.75.2/30")},
				Files: []topology.File{{Path: "/etc/netlabtest/built", Content: []byte("built in Go\n"), Mode: 0o644}}},
		},
	}
}

// A lab built in Go is validated as a file and has one: its names resolve,
// its files are placed, netlab reads it again without drift, and it is
// impaired. The lab value is left as it was, to be brought up again.
func TestUpLabBuiltInGo(t *testing.T) {
	built := builtLab("built")
	lab := UpLab(t, built)
	if lab.Name() != lab.Prefix()+"built" || built.Prefix != "" || built.Links != nil {
		t.Errorf("lab %s, prefix %s; the built lab's prefix %q, links %v", lab.Name(), lab.Prefix(), built.Prefix, built.Links)
	}
	lab.Ping(t, "a", "b")
	if out := lab.Exec(t, "b", "getent", "hosts", "a-p2p"); !strings.Contains(out, "192.168.75.1") {
		t.Errorf("getent hosts a-p2p in b: %s", out)
	}
	if out := lab.Exec(t, "b", "cat", "/etc/netlabtest/built"); out != "built in Go\n" {
		t.Errorf("/etc/netlabtest/built in b: %q", out)
	}
	st, err := lab.Status()
	if err != nil || len(st.Drift) != 0 || st.DriftError != "" {
		t.Errorf("status of a built lab: drift %v, %q, %v", st.Drift, st.DriftError, err)
	}
	lab.Impair(t, "a", "p2p", Rate(50_000_000))
	if im := lab.Impairment(t, "a", "p2p"); im.Rate != 50_000_000 {
		t.Errorf("a/p2p impairment %s, want rate 50mbit", im)
	}
}

// A built lab with a mistake fails the test before anything is made, with
// the field's path and the text Format wrote, its lines numbered.
func TestUpLabBuiltInGoRefused(t *testing.T) {
	RequireRoot(t)
	bad := builtLab("broken")
	bad.Namespaces[1].Interfaces[0].MTU = 20
	rt := &recordingT{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		UpLab(rt, bad)
		t.Error("UpLab of a broken lab returned")
	}()
	<-done
	want := "lab broken built in " + t.Name() + ":"
	if !strings.Contains(rt.fatal, want) || !strings.Contains(rt.fatal, "namespaces.b.interfaces.p2p.mtu: 20 is out of range 68..65535") {
		t.Errorf("UpLab's failure: %q, want %q and the field", rt.fatal, want)
	}
	if !strings.Contains(rt.logs, "   1  name: broken\n") || !strings.Contains(rt.logs, "mtu: 20") {
		t.Errorf("UpLab's log lacks the numbered text:\n%s", rt.logs)
	}
	if strings.Contains(namespaces(t), "broken") {
		t.Errorf("a refused lab made namespaces:\n%s", namespaces(t))
	}
}

// recordingT records a fixture's log and failure; Fatalf ends the calling
// goroutine, as testing.T's does.
type recordingT struct {
	*testing.T
	logs, fatal string
}

func (r *recordingT) Helper()                         {}
func (r *recordingT) Cleanup(func())                  {}
func (r *recordingT) Logf(format string, args ...any) { r.logs += fmt.Sprintf(format, args...) + "\n" }
func (r *recordingT) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Two parallel tests bring the same inline lab up, each under its own
// prefix, each reaching its own b by name; neither leaves a namespace.
func TestParallelUpString(t *testing.T) {
	RequireRoot(t)
	prefixes := make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"one", "two"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				lab := UpString(t, duo)
				prefixes <- lab.Prefix()
				lab.Exec(t, "a", "ping", "-c1", "-W2", "b")
				lab.Exec(t, "b", "ping", "-c1", "-W2", "a-p2p")
				if out := lab.Exec(t, "a", "ip", "netns", "identify"); strings.TrimSpace(out) != lab.NS("a") {
					t.Errorf("Exec in a ran in %q, want %s", out, lab.NS("a"))
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

// A service netlab runs (services: in the file) is waited for from
// another namespace by name, and its log is the test's to read.
func TestServiceWaitAndLogs(t *testing.T) {
	lab := UpString(t, duo+`
    services:
      echo: {command: [sh, -c, "echo service says hello; exec nc -dlk 7000"], ready: {tcp: 7000}}
`)
	lab.WaitTCP(t, "a", "b:7000", 10*time.Second)
	if log := lab.Logs("b", "echo"); !strings.Contains(log, "service says hello") {
		t.Errorf("b/echo's log:\n%s", log)
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(r.(string), "nothing") {
				t.Errorf("Logs of a service the lab does not have: panic %v", r)
			}
		}()
		lab.Logs("b", "nothing")
	}()
}

// An inline lab's file goes with the lab, and stays with a kept one.
func TestUpStringFileKeptWithLab(t *testing.T) {
	RequireRoot(t)
	ft := &fakeT{T: t}
	gone := UpString(ft, duo)
	file := gone.Topology().File
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("the inline lab's file: %v", err)
	}
	ft.failed = true
	ft.runCleanups()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the inline lab's file %s after its lab went down: %v", file, err)
	}

	kt := &fakeT{T: t}
	kept := UpString(kt, duo, WithKeep(true))
	kt.failed = true
	kt.runCleanups()
	st, err := kept.Status()
	if err != nil || st.DriftError != "" || len(st.Drift) != 0 {
		t.Errorf("status of the kept inline lab: %v, %q, %v", st.Drift, st.DriftError, err)
	}
	if _, err := kept.eng.Down(kept.Name()); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Dir(kept.Topology().File))
}

// Without a netlab binary, Exec runs with `ip netns exec`: the network,
// not the view; Command says what is missing.
func TestExecWithoutNetlab(t *testing.T) {
	lab := Up(t, "testdata/pair.yaml")
	t.Setenv("NETLAB_BIN", "")
	var path []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(dir, "netlab")); err != nil {
			path = append(path, dir)
		}
	}
	t.Setenv("PATH", strings.Join(path, string(filepath.ListSeparator)))
	if out := lab.Exec(t, "a", "ip", "-br", "link", "show", "p2p"); !strings.Contains(out, "p2p") {
		t.Errorf("Exec did not run in a's network: %s", out)
	}
	if out := lab.Exec(t, "a", "cat", "/etc/hosts"); strings.Contains(out, "# lab "+lab.Name()) {
		t.Errorf("without netlab, a's /etc/hosts is the lab's:\n%s", out)
	}
	cmd := lab.Command("a", "true")
	if err := cmd.Run(); err == nil || !strings.Contains(err.Error(), "NETLAB_BIN") {
		t.Errorf("Command without a netlab binary: %v", err)
	}
}
