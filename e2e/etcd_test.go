package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/e2e/netlabtest"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// etcdLab: three namespaces on one Linux bridge, one etcd member each.
const etcdLab = `name: etcd
bridges:
  lan: {type: linux}
namespaces:
  e1: {interfaces: {eth0: {peer: lan/p1, addresses: [10.83.0.1/24]}}}
  e2: {interfaces: {eth0: {peer: lan/p2, addresses: [10.83.0.2/24]}}}
  e3: {interfaces: {eth0: {peer: lan/p3, addresses: [10.83.0.3/24]}}}
`

// etcdMembers are the members' namespaces (as the file names them) and
// addresses.
var etcdMembers = []struct{ ns, addr string }{{"e1", "10.83.0.1"}, {"e2", "10.83.0.2"}, {"e3", "10.83.0.3"}}

// startEtcd starts one etcd member in each namespace of the lab, as a
// child of the test (`ip netns exec` runs etcd in the same process), and
// ends each by its PID when the test ends. Logs go to files of the test,
// shown when it fails.
func startEtcd(t *testing.T, lab *netlabtest.Lab) {
	t.Helper()
	var cluster []string
	for _, m := range etcdMembers {
		cluster = append(cluster, fmt.Sprintf("%s=http://%s:2380", m.ns, m.addr))
	}
	dir := t.TempDir()
	for _, m := range etcdMembers {
		log := filepath.Join(dir, m.ns+".log")
		cmd := exec.Command("ip", "netns", "exec", lab.NS(m.ns), "etcd",
			"--name", m.ns,
			"--data-dir", filepath.Join(dir, m.ns),
			"--listen-peer-urls", "http://"+m.addr+":2380",
			"--initial-advertise-peer-urls", "http://"+m.addr+":2380",
			"--listen-client-urls", "http://"+m.addr+":2379",
			"--advertise-client-urls", "http://"+m.addr+":2379",
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-token", lab.Name(),
			"--initial-cluster-state", "new",
			"--heartbeat-interval", "100", "--election-timeout", "1000",
			"--logger", "zap", "--log-outputs", log)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test
		if err := cmd.Start(); err != nil {
			t.Fatalf("start etcd in %s: %v", m.ns, err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() {
			_ = syscall.Kill(pid, syscall.SIGKILL) // by PID: this process alone
			cmd.Wait()
			if t.Failed() {
				if b, err := os.ReadFile(log); err == nil {
					t.Logf("etcd %s (pid %d) log, last lines:\n%s", m.ns, pid, tail(string(b), 15))
				}
			}
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// etcdctl runs etcdctl in a namespace against the endpoints given, each
// command bounded by its timeout.
func etcdctl(lab *netlabtest.Lab, ns string, endpoints []string, timeout time.Duration, args ...string) (string, error) {
	var urls []string
	for _, e := range endpoints {
		urls = append(urls, "http://"+e+":2379")
	}
	base := []string{"--endpoints=" + strings.Join(urls, ","), "--dial-timeout=1s", "--command-timeout=" + timeout.String()}
	return lab.Run(ns, "etcdctl", append(base, args...)...)
}

// memberStatus is what `etcdctl endpoint status -w json` says of one
// member: who it is, whom it follows, its term and applied index.
type memberStatus struct {
	ID, Leader, Term, Index uint64
}

func etcdStatus(lab *netlabtest.Lab, ns, addr string) (memberStatus, error) {
	out, err := etcdctl(lab, ns, []string{addr}, 2*time.Second, "endpoint", "status", "-w", "json")
	if err != nil {
		return memberStatus{}, fmt.Errorf("%v: %s", err, out)
	}
	var st []struct {
		Status struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
				RaftTerm uint64 `json:"raft_term"`
			} `json:"header"`
			Leader           uint64 `json:"leader"`
			RaftAppliedIndex uint64 `json:"raftAppliedIndex"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		return memberStatus{}, fmt.Errorf("endpoint status: %v: %s", err, out)
	}
	s := st[0].Status
	return memberStatus{ID: s.Header.MemberID, Leader: s.Leader, Term: s.Header.RaftTerm, Index: s.RaftAppliedIndex}, nil
}

// waitFor polls cond every 200 ms until it holds, for at most d; it fails
// the test with what cond last said.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestEtcdPartition: a real consumer. A three-member etcd cluster runs in
// the lab's namespaces; the leader is partitioned from the other two. The
// majority elects a new leader and goes on accepting writes; the old
// leader cannot commit one. Healed, the three are one cluster again, all
// healthy, every acknowledged write on every member and the one the old
// leader could not commit on none.
func TestEtcdPartition(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, etcd", "etcd", "etcdctl")
	lab := netlabtest.Up(t, writeFile(t, t.TempDir(), "etcd.yaml", etcdLab))
	startEtcd(t, lab) // registered after Up: the members end before the lab goes
	all := []string{"10.83.0.1", "10.83.0.2", "10.83.0.3"}

	// One cluster, one leader, all three agreeing.
	var leader int
	waitFor(t, 60*time.Second, "cluster up with a leader", func() (bool, string) {
		var ids, leaders []uint64
		for _, m := range etcdMembers {
			st, err := etcdStatus(lab, m.ns, m.addr)
			if err != nil {
				return false, err.Error()
			}
			ids, leaders = append(ids, st.ID), append(leaders, st.Leader)
		}
		if leaders[0] == 0 || leaders[1] != leaders[0] || leaders[2] != leaders[0] {
			return false, fmt.Sprintf("leaders %x", leaders)
		}
		leader = slices.Index(ids, leaders[0])
		return leader >= 0, fmt.Sprintf("leader %x not among %x", leaders[0], ids)
	})
	old := etcdMembers[leader]
	var rest []string
	var restAddrs []string
	for i, m := range etcdMembers {
		if i != leader {
			rest, restAddrs = append(rest, m.ns), append(restAddrs, m.addr)
		}
	}
	oldStatus, err := etcdStatus(lab, old.ns, old.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s (member %x, term %d); partitioning it from %v", old.ns, oldStatus.ID, oldStatus.Term, rest)
	var written []string
	put := func(ns string, endpoints []string, key string) error {
		out, err := etcdctl(lab, ns, endpoints, 3*time.Second, "put", key, "v-"+key)
		if err != nil || !strings.Contains(out, "OK") {
			return fmt.Errorf("put %s through %v: %v: %s", key, endpoints, err, out)
		}
		written = append(written, key)
		return nil
	}
	for i := range 5 {
		if err := put(old.ns, all, fmt.Sprintf("before/%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	heal := lab.Partition(t, []string{old.ns}, rest)

	// The majority elects a leader of its own, in a later term.
	var newLeader uint64
	waitFor(t, 30*time.Second, "a new leader in the majority", func() (bool, string) {
		var leaders []uint64
		var ids []uint64
		for i, ns := range rest {
			st, err := etcdStatus(lab, ns, restAddrs[i])
			if err != nil {
				return false, err.Error()
			}
			leaders, ids = append(leaders, st.Leader), append(ids, st.ID)
			if st.Term <= oldStatus.Term {
				return false, fmt.Sprintf("%s still in term %d", ns, st.Term)
			}
		}
		newLeader = leaders[0]
		return leaders[0] != 0 && leaders[0] == leaders[1] && slices.Contains(ids, leaders[0]),
			fmt.Sprintf("majority's leaders %x (members %x)", leaders, ids)
	})
	t.Logf("the majority elected member %x", newLeader)
	for i := range 5 {
		if err := put(rest[i%2], restAddrs, fmt.Sprintf("during/%d", i)); err != nil {
			t.Errorf("the majority refused a write: %v", err)
		}
	}
	// The old leader cannot commit: its write times out, and is never seen.
	if out, err := etcdctl(lab, old.ns, []string{old.addr}, 3*time.Second, "put", "lost", "never"); err == nil {
		t.Errorf("the partitioned old leader committed a write:\n%s", out)
	} else {
		t.Logf("the old leader's write failed as it must: %s", strings.TrimSpace(out))
	}

	heal()

	// One cluster again: all three healthy, following one leader, at the
	// same applied index.
	waitFor(t, 60*time.Second, "one healthy cluster after heal", func() (bool, string) {
		out, err := etcdctl(lab, old.ns, all, 3*time.Second, "endpoint", "health")
		if err != nil || strings.Count(out, "is healthy") != 3 {
			return false, fmt.Sprintf("health: %v: %s", err, out)
		}
		var leaders, index []uint64
		for _, m := range etcdMembers {
			st, err := etcdStatus(lab, m.ns, m.addr)
			if err != nil {
				return false, err.Error()
			}
			leaders, index = append(leaders, st.Leader), append(index, st.Index)
		}
		same := leaders[0] != 0 && leaders[1] == leaders[0] && leaders[2] == leaders[0] && index[1] == index[0] && index[2] == index[0]
		return same, fmt.Sprintf("leaders %x, applied indexes %d", leaders, index)
	})
	if err := put(old.ns, []string{old.addr}, "after/0"); err != nil {
		t.Errorf("the healed old leader's member cannot write: %v", err)
	}
	// No write lost, on any member; the uncommitted one nowhere.
	slices.Sort(written)
	for _, m := range etcdMembers {
		out, err := etcdctl(lab, m.ns, []string{m.addr}, 3*time.Second, "get", "--prefix", "--keys-only", "--consistency=s", "")
		if err != nil {
			t.Fatalf("get from %s: %v: %s", m.ns, err, out)
		}
		keys := strings.Fields(out)
		slices.Sort(keys)
		if !slices.Equal(keys, written) {
			t.Errorf("member %s holds %q, want every acknowledged write %q and nothing else", m.ns, keys, written)
		}
	}
}
