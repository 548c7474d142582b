package emulator

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// priorityChild raises its own priority to want and prints, for each of
// its threads, the policy, real-time priority and nice value it has then.
func priorityChild(want Priority) int {
	got, err := raisePriority(want)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(got)
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue
		}
		fmt.Println(a.Policy, a.Priority, int32(a.Nice))
	}
	return 0
}

// As root, realtime puts every thread of the emulator in SCHED_FIFO one
// above the lowest priority (ahead of real-time programs at the lowest,
// such as a test's prober), and high at nice -10.
func TestRaisePriority(t *testing.T) {
	testkit.RequireRoot(t, "real-time scheduling")
	for _, tc := range []struct {
		want   Priority
		policy uint32
		prio   uint32
		nice   int32
	}{
		{PriorityRealtime, unix.SCHED_FIFO, 2, 0},
		{PriorityHigh, unix.SCHED_NORMAL, 0, -10},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$", string(tc.want))
		cmd.Env = append(os.Environ(), reexecEnv+"=priority")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.want, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if lines[0] != string(tc.want) || len(lines) < 2 {
			t.Fatalf("%s: got %q", tc.want, out)
		}
		for _, l := range lines[1:] {
			if want := fmt.Sprint(tc.policy, tc.prio, tc.nice); l != want {
				t.Errorf("%s: a thread has policy, priority, nice %s, want %s", tc.want, l, want)
			}
		}
	}
}
