package reflector

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/topology"
)

// reexecEnv makes the test binary act as a child process instead of running
// tests: "main" runs Main(os.Args[1:]) (the reflector process), "caps" drops
// capabilities and prints every thread's status.
const reexecEnv = "NETLAB_REFLECTOR_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(reexecEnv) {
	case "":
		// In a sandbox of their own, like every package that makes
		// namespaces (sandbox.RunTests).
		os.Exit(sandbox.RunTests(m.Run, false))
	case "main":
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	case "caps":
		os.Exit(capsChild())
	case "affinity":
		os.Exit(affinityChild(os.Args[1]))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s\n", reexecEnv)
		os.Exit(3)
	}
}

// affinityChild starts a few threads, sets the CPU list cpus on the
// process, starts a few more, and prints every thread's Cpus_allowed_list.
func affinityChild(cpus string) int {
	release := make(chan struct{})
	lockThreads := func() {
		for range 3 {
			go func() {
				runtime.LockOSThread()
				<-release
			}()
		}
	}
	lockThreads()
	list, err := topology.ParseCPUList(cpus)
	if err == nil {
		err = SetAffinity(list)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lockThreads()
	time.Sleep(50 * time.Millisecond) // let the new threads start
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, e := range tasks {
		st, err := ReadProcStatus("/proc/self/task/" + e.Name() + "/status")
		if err == nil {
			fmt.Println(e.Name(), st["Cpus_allowed_list"])
		}
	}
	close(release)
	return 0
}

// capsChild runs a few goroutines locked to their own threads (so the
// process has several), drops capabilities and prints
// "TID CapEff CapPrm CapBnd NoNewPrivs" for every thread.
func capsChild() int {
	release := make(chan struct{})
	for range 4 {
		go func() {
			runtime.LockOSThread()
			<-release
		}()
	}
	if err := DropAllCapabilities(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	var lines []string
	for _, e := range tasks {
		st, err := ReadProcStatus("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s %s", e.Name(), st["CapEff"], st["CapPrm"], st["CapBnd"], st["NoNewPrivs"]))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	close(release)
	return 0
}
