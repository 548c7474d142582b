package ovs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/openflow"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// testLearnCookie is the learn cookie of the goldens.
const testLearnCookie = 0x6e6c000000000002

func TestMatchKeysAndPrecheck(t *testing.T) {
	for _, tc := range []struct {
		flow, msg string
	}{
		{"table=0,priority=5,actions=drop", ""},
		{"priority=5 in_port=1 actions=learn(table=10,cookie=0x5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])", ""},
		{"cookie=0x5,actions=drop", "sets cookie"},
		{"table=1 COOKIE:0 actions=drop", "sets cookie"},
		{"  ", "empty flow"},
		{"# comment", "comment"},
		{"actions=drop\nadd actions=drop", "several lines"},
	} {
		msg := precheckFlow(tc.flow)
		if (tc.msg == "") != (msg == "") || !strings.Contains(msg, tc.msg) {
			t.Errorf("precheckFlow(%q) = %q, want %q", tc.flow, msg, tc.msg)
		}
	}
}

// TestCheckFlowsLoop drives CheckFlows' retry loop with a fake ovs-ofctl
// that rejects flows containing "bad" the way the real one does.
func TestCheckFlowsLoop(t *testing.T) {
	var runs int
	fake := func(cmd string, args ...string) ([]byte, error) {
		runs++
		path := args[len(args)-1]
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if strings.Contains(l, "bad") {
				return fmt.Appendf(nil, "ovs-ofctl: %s:%d: unknown keyword bad\n", path, i+1), errors.New("exit status 1")
			}
		}
		return nil, nil
	}
	flows := []string{"actions=drop", "bad=1,actions=drop", "cookie=1,actions=drop", "actions=drop", "bad,actions=drop"}
	errs := checkFlows(fake, flows)
	var got []string
	for _, err := range errs {
		var fe *FlowError
		if !errors.As(err, &fe) {
			t.Fatalf("not a FlowError: %v", err)
		}
		got = append(got, fmt.Sprintf("%d:%s", fe.Index, fe.Msg))
	}
	want := []string{"1:unknown keyword bad", "2:sets cookie: netlab gives every flow of the lab its cookie; remove cookie=", "4:unknown keyword bad"}
	if !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if runs != 3 {
		t.Errorf("%d runs of ovs-ofctl, want 3", runs)
	}
	// A failure without a line number is one plain error.
	errs = checkFlows(func(string, ...string) ([]byte, error) {
		return []byte("ovs-ofctl: not found"), errors.New("exec: not found")
	}, []string{"actions=drop"})
	if len(errs) != 1 || flowIndex(errs[0]) != -1 {
		t.Errorf("checkFlows(broken ovs-ofctl) = %v", errs)
	}
}

func requireOFCtl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		testkit.SkipOrFail(t, "needs ovs-ofctl")
	}
}

// TestCheckFlows uses the real ovs-ofctl parser (no switch needed).
func TestCheckFlows(t *testing.T) {
	requireOFCtl(t)
	good := openflow.LearningSwitch(openflow.LearningSwitchConfig{Ports: []int{1, 2, 3}, LearnCookie: testLearnCookie})
	good = append(good, "table=20,priority=5,ip,nw_dst=10.0.0.0/8,actions=output:NXM_NX_REG0[0..15]",
		"table=21 priority=7 tcp tp_dst=80 actions=ct(commit,zone=1)",
		// What `ovs-ofctl add-flow` takes with its default protocols:
		// OpenFlow 1.0 with Nicira extensions, where 1.1+ calls these
		// inconsistent (the OVS tutorial's flows).
		"table=1, reg0=2, actions=strip_vlan,output:2",
		"table=0, in_port=1, vlan_tci=0, actions=mod_vlan_vid:20,output:2",
		"in_port=2,actions=mod_nw_tos:4,output:1")
	if errs := CheckFlows(good); len(errs) != 0 {
		t.Fatalf("CheckFlows(good) = %v", errs)
	}
	// Open vSwitch's reason, on one line, with the log line that says why.
	errs := CheckFlows([]string{"in_port=3,actions=set_field:5->vlan_vid,output:1"})
	var fe0 *FlowError
	if len(errs) != 1 || !errors.As(errs[0], &fe0) || strings.Contains(fe0.Msg, "\n") ||
		!strings.Contains(fe0.Msg, "OFPBAC_MATCH_INCONSISTENT") || !strings.Contains(fe0.Msg, "set_field vlan_vid lacks correct prerequisites") {
		t.Errorf("CheckFlows(inconsistent) = %v", errs)
	}
	flows := []string{
		"actions=drop",
		"foo=bar,actions=drop",                    // unknown field
		"table=0,actions=output:1,drop",           // drop with other actions
		"cookie=0x5,actions=drop",                 // netlab owns cookies
		"table=1,priority=5,actions=LOCAL",        // fine
		"table=0,in_port=1",                       // no actions
		"delete table=0",                          // a command, not a flow
		"table=0,priority=5,actions=resubmit(,1)", // fine
	}
	errs = CheckFlows(flows)
	var idx []int
	for _, err := range errs {
		t.Logf("%v", err)
		var fe *FlowError
		if !errors.As(err, &fe) {
			t.Fatalf("not a FlowError: %v", err)
		}
		idx = append(idx, fe.Index)
	}
	if want := []int{1, 2, 3, 5, 6}; !slices.Equal(idx, want) {
		t.Errorf("bad flows %v, want %v", idx, want)
	}
}

func TestParseFlowsNX(t *testing.T) {
	flows, err := ParseFlows([]byte(readTestdata(t, "dump-flows-nx.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 18 {
		t.Fatalf("%d flows, want 18", len(flows))
	}
	want := map[int]Flow{
		0: {Table: 0, Priority: 100, Cookie: 0x10, IdleAge: 152, Match: "dl_src=01:00:00:00:00:00/01:00:00:00:00:00", Actions: "drop"},
		1: {Table: 0, Priority: 60, Cookie: 0x10, Packets: 11, Bytes: 866, IdleAge: 15, Match: "in_port=LOCAL",
			Actions: "learn(table=10,idle_timeout=300,cookie=0x77,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0xffff->NXM_NX_REG0[0..15]),resubmit(,1)"},
		2: {Table: 0, Priority: 50, Cookie: 0x10, Packets: 48, Bytes: 3644, IdleAge: 0,
			Actions: "learn(table=10,idle_timeout=300,cookie=0x77,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15]),resubmit(,1)"},
		5: {Table: 2, Priority: 50, Cookie: 0x10, Packets: 44, Bytes: 3320, Match: "reg0=0", Actions: "output:1,output:2,output:3,LOCAL"},
		10: {Table: 10, Priority: DefaultPriority, Cookie: 0x77, Packets: 6, Bytes: 476, IdleTimeout: 300, Match: "dl_dst=ee:e6:dc:3e:d6:23",
			Actions: "load:0x1->NXM_NX_REG0[0..15]"},
		14: {Table: 20, Priority: DefaultPriority, Cookie: 0x99, HardTimeout: 600, IdleAge: 118, Actions: "output:NXM_NX_REG0[0..15]"},
		15: {Table: 21, Priority: DefaultPriority, IdleAge: 121, Actions: "drop"},
		16: {Table: 21, Priority: 7, IdleAge: 117, Match: "tcp,nw_src=10.0.0.0/8,tp_dst=80", Actions: "ct(commit,zone=1),note:aa.bb.00.00.00.00"},
		17: {Table: 22, Priority: 0, IdleAge: 121, Actions: "NORMAL"},
	}
	for i, w := range want {
		if flows[i] != w {
			t.Errorf("flow %d:\n got %+v\nwant %+v", i, flows[i], w)
		}
	}
}

func TestParseFlowsOF14AndNoStats(t *testing.T) {
	of14, err := ParseFlows([]byte(readTestdata(t, "dump-flows-of14.txt")))
	if err != nil {
		t.Fatal(err)
	}
	nostats, err := ParseFlows([]byte(readTestdata(t, "dump-flows-nostats.txt")))
	if err != nil {
		t.Fatal(err)
	}
	byKey := func(fs []Flow) map[string]Flow {
		m := map[string]Flow{}
		for _, f := range fs {
			m[fmt.Sprintf("%d/%d/%s", f.Table, f.Priority, f.Match)] = f
		}
		return m
	}
	o, n := byKey(of14), byKey(nostats)
	if len(n) != 18 || len(o) != 20 {
		t.Fatalf("%d OF1.4 flows, %d no-stats flows", len(o), len(n))
	}
	for k, nf := range n {
		of, ok := o[k]
		if !ok {
			t.Errorf("%s missing from the OF1.4 dump", k)
			continue
		}
		if of.IdleAge != -1 || nf.IdleAge != -1 {
			t.Errorf("%s: idle_age in an OF1.4 or no-stats dump: %d %d", k, of.IdleAge, nf.IdleAge)
		}
		of.Packets, of.Bytes = 0, 0
		if of != nf {
			t.Errorf("%s:\n OF1.4 %+v\nno-stats %+v", k, of, nf)
		}
	}
	// Flags and importance before the match or the actions.
	for k, w := range map[string]Flow{
		"20/32768/":      {Table: 20, Priority: DefaultPriority, Cookie: 0x99, HardTimeout: 600, IdleAge: -1, Actions: "output:NXM_NX_REG0[0..15]"},
		"23/32768/":      {Table: 23, Priority: DefaultPriority, Cookie: 0x98, IdleAge: -1, Actions: "drop"},
		"23/9/in_port=2": {Table: 23, Priority: 9, Cookie: 0x98, IdleAge: -1, Match: "in_port=2", Actions: "drop"},
	} {
		if o[k] != w {
			t.Errorf("%s:\n got %+v\nwant %+v", k, o[k], w)
		}
	}
	if f := n["0/100/dl_src=01:00:00:00:00:00/01:00:00:00:00:00"]; f.Cookie != 0x10 || f.Table != 0 {
		t.Errorf("no-stats table 0 flow: %+v", f)
	}
}

func TestParseFlowsErrors(t *testing.T) {
	for _, in := range []string{
		"garbage\n",
		" cookie=0x1, table=0 priority=1\n",
		" cookie=zz, table=0, actions=drop\n",
		" table=x, actions=drop\n",
		" priority=high,in_port=1 actions=drop\n",
	} {
		if fs, err := ParseFlows([]byte(in)); err == nil {
			t.Errorf("ParseFlows(%q) = %+v, want error", in, fs)
		}
	}
	if fs, err := ParseFlows([]byte("NXST_FLOW reply (xid=0x4):\n\n")); err != nil || len(fs) != 0 {
		t.Errorf("empty dump: %v %v", fs, err)
	}
	if fs, err := ParseFlows([]byte(" actions=drop\n")); err != nil || len(fs) != 1 || fs[0].Priority != DefaultPriority || fs[0].Match != "" {
		t.Errorf("bare flow: %+v %v", fs, err)
	}
}

func TestLearnedMACsParse(t *testing.T) {
	flows, err := ParseFlows([]byte(readTestdata(t, "dump-flows-nx.txt")))
	if err != nil {
		t.Fatal(err)
	}
	flows = append(flows, Flow{Table: 10, Cookie: 0x77, Match: "dl_dst=aa:aa:aa:aa:aa:aa", Actions: "set_field:0x5->reg0", IdleAge: 3})
	flows = append(flows, Flow{Table: 10, Cookie: 0x77, Match: "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", Actions: "drop"})
	got := learnedMACs(flows, 10, 0x77)
	want := []MACEntry{
		{MAC: "2e:13:e6:26:e8:4e", Port: LearnedLocal, IdleAge: 149, IdleTimeout: 300},
		{MAC: "aa:aa:aa:aa:aa:aa", Port: 5, IdleAge: 3},
		{MAC: "d6:92:1b:85:89:1c", Port: 2, IdleTimeout: 300, Packets: 6},
		{MAC: "ee:e6:dc:3e:d6:23", Port: 1, IdleTimeout: 300, Packets: 6},
		{MAC: "f2:81:52:c6:09:73", Port: 3, IdleTimeout: 300, Packets: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("learnedMACs:\n got %+v\nwant %+v", got, want)
	}
	if got := learnedMACs(flows, 10, 0x78); len(got) != 0 {
		t.Errorf("other cookie: %+v", got)
	}
}

// scriptedOFCtl fakes ovs-ofctl for the Client: it records argv, keeps a
// copy of every file argument's content, and answers by subcommand;
// parse-flows is the real one (it needs no switch).
type scriptedOFCtl struct {
	calls []string
	files map[string]string // subcommand → content of its file argument(s)
	dump  string            // dump-flows output
	diff  error             // diff-flows result
	diffs string            // diff-flows output when it fails
	add   error             // add-flows result
}

func (s *scriptedOFCtl) exec(cmd string, args ...string) ([]byte, error) {
	s.calls = append(s.calls, cmd+" "+strings.Join(args, " "))
	sub := ""
	for i, a := range args {
		if strings.HasPrefix(a, "/") {
			if b, err := os.ReadFile(a); err == nil {
				s.files[sub] += string(b)
			}
		} else if !strings.HasPrefix(a, "-") && sub == "" && (i == 0 || args[i-1] != "-O") {
			sub = a
		}
	}
	switch sub {
	case "parse-flows":
		return runLocal(cmd, args...)
	case "dump-flows":
		return []byte(s.dump), nil
	case "diff-flows":
		return []byte(s.diffs), s.diff
	case "add-flows":
		return nil, s.add
	}
	return nil, nil
}

func exitErr(t *testing.T, code int) error {
	t.Helper()
	err := exec.Command("sh", "-c", fmt.Sprintf("exit %d", code)).Run()
	if err == nil {
		t.Fatal("no exit error")
	}
	return err
}

func TestEnsureFlowsFake(t *testing.T) {
	requireOFCtl(t)
	flows := []string{"table=0,actions=resubmit(,1)", " table=1,actions=drop "}
	dump := "OFPST_FLOW reply (OF1.4) (xid=0x2):\n cookie=0x10, actions=resubmit(,1)\n"

	// Equal as written: one dump, one diff, nothing else.
	s := &scriptedOFCtl{files: map[string]string{}, dump: dump}
	c := newFakeClient(t, &fakeOVS{})
	c.run = s.exec
	changed, err := c.EnsureFlows("br0", 0x10, flows)
	if err != nil || changed {
		t.Fatalf("EnsureFlows(equal) = %v, %v", changed, err)
	}
	if len(s.calls) != 2 || !strings.Contains(s.calls[0], "ovs-ofctl --timeout=10 --no-names dump-flows --no-stats br0 cookie=0x10/-1") ||
		!strings.Contains(s.calls[1], "ovs-ofctl --timeout=10 diff-flows /") {
		t.Errorf("calls:\n%s", strings.Join(s.calls, "\n"))
	}
	if want := "cookie=0x10, actions=resubmit(,1)\ncookie=0x10,table=0,actions=resubmit(,1)\ncookie=0x10,table=1,actions=drop\n"; s.files["diff-flows"] != want {
		t.Errorf("diff-flows files:\n%s\nwant:\n%s", s.files["diff-flows"], want)
	}

	// Different (exit 2) as written and in the normal form (parse-flows,
	// dump and diff in OpenFlow 1.4): the bundle deletes by cookie, then adds.
	s = &scriptedOFCtl{files: map[string]string{}, dump: dump, diff: exitErr(t, 2)}
	c.run = s.exec
	changed, err = c.EnsureFlows("br0", 0x10, flows)
	if err != nil || !changed {
		t.Fatalf("EnsureFlows(differ) = %v, %v", changed, err)
	}
	if len(s.calls) != 6 || !strings.Contains(s.calls[2], "ovs-ofctl -O OpenFlow14 parse-flows /") ||
		!strings.Contains(s.calls[3], "ovs-ofctl --timeout=10 -O OpenFlow14 --no-names dump-flows") ||
		!strings.Contains(s.calls[5], "ovs-ofctl --timeout=10 -O OpenFlow14 --bundle add-flows br0 /") {
		t.Errorf("calls:\n%s", strings.Join(s.calls, "\n"))
	}
	if want := "delete cookie=0x10/-1\nadd cookie=0x10,table=0,actions=resubmit(,1)\nadd cookie=0x10,table=1,actions=drop\n"; s.files["add-flows"] != want {
		t.Errorf("bundle file:\n%s\nwant:\n%s", s.files["add-flows"], want)
	}

	// A flow only OpenFlow 1.0 carries: no bundle, the difference one
	// flow_mod at a time: the new and changed flows, then strict deletes of
	// the lab's flows the file dropped (not of one an add replaced).
	of10 := []string{"table=4,reg0=2,actions=strip_vlan,output:2", "table=1,priority=0,actions=drop"}
	s = &scriptedOFCtl{files: map[string]string{}, dump: "", diff: exitErr(t, 2),
		diffs: "-table=4 reg0=0x2 cookie=0x10 actions=output:2\n+table=4 reg0=0x2 cookie=0x10 actions=strip_vlan,output:2\n" +
			"-table=3 priority=50,reg0=0 cookie=0x10 actions=drop\n-table=2 cookie=0x10 actions=drop\n-priority=9 cookie=0x10 actions=drop\n" +
			"+table=1 priority=0 cookie=0x10 actions=drop\n"}
	c.run = s.exec
	changed, err = c.EnsureFlows("br0", 0x10, of10)
	if err != nil || !changed {
		t.Fatalf("EnsureFlows(OpenFlow 1.0) = %v, %v", changed, err)
	}
	if !strings.Contains(s.calls[3], "ovs-ofctl parse-flows /") || !strings.Contains(s.calls[4], "ovs-ofctl --timeout=10 --no-names dump-flows") ||
		!strings.Contains(s.calls[len(s.calls)-1], "ovs-ofctl --timeout=10 add-flows br0 /") {
		t.Errorf("calls:\n%s", strings.Join(s.calls, "\n"))
	}
	want := "add table=4 reg0=0x2 cookie=0x10 actions=strip_vlan,output:2\nadd table=1 priority=0 cookie=0x10 actions=drop\n" +
		"delete_strict cookie=0x10/-1,table=3,priority=50,reg0=0\ndelete_strict cookie=0x10/-1,table=2\ndelete_strict cookie=0x10/-1,table=0,priority=9\n"
	if s.files["add-flows"] != want {
		t.Errorf("one-by-one file:\n%s\nwant:\n%s", s.files["add-flows"], want)
	}

	// diff-flows failing otherwise is an error; StaticFlowsDiffer says so.
	s = &scriptedOFCtl{files: map[string]string{}, dump: dump, diff: exitErr(t, 1)}
	c.run = s.exec
	if d, _, err := c.StaticFlowsDiffer("br0", 0x10, flows); err == nil {
		t.Errorf("StaticFlowsDiffer with failing diff-flows = %v, nil", d)
	}

	// A cookie in a flow is refused before anything runs.
	s = &scriptedOFCtl{files: map[string]string{}}
	c.run = s.exec
	_, err = c.EnsureFlows("br0", 0x10, []string{"actions=drop", "cookie=0x1,actions=drop"})
	var fe *FlowError
	if !errors.As(err, &fe) || fe.Index != 1 || len(s.calls) != 0 {
		t.Errorf("EnsureFlows(cookie) = %v after %v", err, s.calls)
	}
}

func TestDeleteFlowsFake(t *testing.T) {
	f := (&fakeOVS{}).on("del-flows gone", "ovs-ofctl: gone is not a bridge or a socket", errors.New("exit status 1")).
		on("br-exists gone", "", errors.New("exit status 2")).
		on("del-flows broken", "ovs-ofctl: broken.mgmt: failed to open socket (Connection refused)", errors.New("exit status 1"))
	c := newFakeClient(t, f)
	if err := c.DeleteFlows("br0", 0x10); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteFlows("gone", 0x10); err != nil {
		t.Errorf("DeleteFlows(gone bridge) = %v", err)
	}
	if err := c.DeleteFlows("broken", 0x10); err == nil {
		t.Error("DeleteFlows(broken) = nil")
	}
	assertCalls(t, f,
		"ovs-ofctl --timeout=10 del-flows br0 cookie=0x10/-1",
		"ovs-ofctl --timeout=10 del-flows gone cookie=0x10/-1",
		"ovs-vsctl --db=unix:/run/netlab-unit/db.sock --timeout=10 br-exists gone",
		"ovs-ofctl --timeout=10 del-flows broken cookie=0x10/-1")
}

// A bridge the database has but ovs-vswitchd has not made yet: ovs-ofctl
// waits for it instead of failing.
func TestOFCtlWaitsForABridgeInTheMaking(t *testing.T) {
	f := &fakeOVS{}
	c := newFakeClient(t, f)
	tries := 0
	c.run = func(cmd string, args ...string) ([]byte, error) {
		line := strings.Join(append([]string{cmd}, args...), " ")
		if strings.Contains(line, "dump-flows new") {
			if tries++; tries < 3 {
				return []byte("ovs-ofctl: new is not a bridge or a socket"), errors.New("exit status 1")
			}
		}
		return f.exec(cmd, args...)
	}
	if _, err := c.DumpFlows("new"); err != nil || tries != 3 {
		t.Fatalf("DumpFlows of a bridge in the making: %v after %d tries", err, tries)
	}
}
