package ovs

// OpenFlow tables of a lab's bridges: checking flows with ovs-ofctl's own
// parser and default protocols (as `ovs-ofctl add-flow` takes them),
// comparing them by meaning (Open vSwitch's normal form against its dump),
// installing the lab's static flows only when they differ (one atomic
// OpenFlow 1.4 bundle, or flow by flow for a set only OpenFlow 1.0 carries),
// and reading flows, learned MAC entries and traces back.
//
// The lab's static flows carry one cookie (compared with a full mask); every
// other cookie (the MAC entries learn() creates, a user's own flows) is left
// alone. go-openvswitch's flow parser is not used: it misreads learn() and
// fails on output:NXM_NX_REG0[..] (LIBRARIES.md §7.7), so dumps are parsed
// here.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	goovs "github.com/digitalocean/go-openvswitch/ovs"
)

// LearnedLocal is what the learning switch stores in reg0 (and MACEntry.Port
// says) for a MAC seen on the bridge's LOCAL port, whose in_port is 0xfffe
// (65534): a separate table-0 flow learns the constant 0xffff, which is no
// OpenFlow port number, and table 2 maps it to LOCAL.
const LearnedLocal = 0xffff

// bundleVersion is the OpenFlow version of a bundle: ovs-ofctl --bundle
// needs 1.3 or later, and netlab's bridges enable 1.4 (protocols).
const bundleVersion = "OpenFlow14"

// FlowError says why one flow of a list is bad; Index is its position.
type FlowError struct {
	Index int
	Flow  string
	Msg   string
}

func (e *FlowError) Error() string {
	return fmt.Sprintf("flow %d %q: %s", e.Index, e.Flow, e.Msg)
}

// precheckFlows catches what ovs-ofctl would not, or would silently accept
// in a flow file: a cookie (netlab owns cookies), an empty line or comment
// (skipped by OVS, so the flow would vanish), several lines in one flow.
func precheckFlows(flows []string) []error {
	var errs []error
	for i, f := range flows {
		if msg := precheckFlow(f); msg != "" {
			errs = append(errs, &FlowError{Index: i, Flow: f, Msg: msg})
		}
	}
	return errs
}

func precheckFlow(f string) string {
	t := strings.TrimSpace(f)
	switch {
	case t == "":
		return "empty flow"
	case strings.ContainsAny(f, "\r\n"):
		return "flow spans several lines"
	case strings.HasPrefix(t, "#"):
		return "flow is a comment"
	}
	if matchKeys(t)["cookie"] {
		return "sets cookie: netlab gives every flow of the lab its cookie; remove cookie="
	}
	return ""
}

// matchKeys returns the keys of the fields before the actions, the way
// ovs-ofctl splits them (lib/ofp-flow.c parse_ofp_str__: the actions start at
// the first "action"; fields are separated by commas or white space, the key
// ends at '=', ':' or '(').
func matchKeys(flow string) map[string]bool {
	if i := strings.Index(flow, "action"); i >= 0 {
		flow = flow[:i]
	}
	keys := map[string]bool{}
	for _, field := range strings.FieldsFunc(flow, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	}) {
		if i := strings.IndexAny(field, "=:("); i >= 0 {
			field = field[:i]
		}
		keys[strings.ToLower(field)] = true
	}
	return keys
}

// CheckFlows checks flows in ovs-ofctl add-flow syntax without a switch, with
// Open vSwitch's own parser and its default protocols, so every flow that
// `ovs-ofctl add-flow BR FLOW` accepts is accepted (OpenFlow 1.0 with Nicira
// extensions included: strip_vlan with no VLAN match, mod_nw_tos with no IP
// match). Equivalent to: `ovs-ofctl parse-flows FILE`, repeated without the
// offending line until the rest parses (ovs-ofctl stops at the first error).
// It returns one *FlowError per bad flow, in order, each with Open vSwitch's
// reason on one line; none if all are good. Flows setting cookie= are
// refused (netlab owns cookies), as are empty and multi-line flows. If
// ovs-ofctl cannot be run, the only error is not a *FlowError. Checks that
// need a switch (ports that exist, table limits) are not made.
func CheckFlows(flows []string) []error {
	return checkFlows(runLocal, flows)
}

// runLocal runs an OVS program that needs no daemon, bounded by
// DefaultTimeout; stdout on success, stderr then stdout on failure.
func runLocal(cmd string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	x := exec.CommandContext(ctx, cmd, args...)
	var stdout, stderr bytes.Buffer
	x.Stdout, x.Stderr = &stdout, &stderr
	if err := x.Run(); err != nil {
		return append(stderr.Bytes(), stdout.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

func checkFlows(run func(string, ...string) ([]byte, error), flows []string) []error {
	errs := precheckFlows(flows)
	bad := map[int]bool{}
	for _, e := range errs {
		bad[e.(*FlowError).Index] = true
	}
	for {
		var idx []int // line i+1 of the file is flows[idx[i]]
		var lines []string
		for i, f := range flows {
			if !bad[i] {
				idx = append(idx, i)
				lines = append(lines, f)
			}
		}
		if len(lines) == 0 {
			break
		}
		path, err := writeFlowFile(lines)
		if err != nil {
			return append(errs, fmt.Errorf("check flows: %w", err))
		}
		out, err := run("ovs-ofctl", "parse-flows", path)
		os.Remove(path)
		if err == nil {
			break
		}
		line, msg, ok := fileLineError(out, path)
		if !ok || line < 1 || line > len(idx) {
			return append(errs, fmt.Errorf("check flows: ovs-ofctl parse-flows: %w: %s", err, oneLine(out)))
		}
		i := idx[line-1]
		bad[i] = true
		errs = append(errs, &FlowError{Index: i, Flow: flows[i], Msg: msg})
	}
	slices.SortFunc(errs, func(a, b error) int { return flowIndex(a) - flowIndex(b) })
	return errs
}

func flowIndex(err error) int {
	var fe *FlowError
	if errors.As(err, &fe) {
		return fe.Index
	}
	return -1
}

// writeFlowFile writes lines to a new temporary file for ovs-ofctl.
func writeFlowFile(lines []string) (string, error) {
	f, err := os.CreateTemp("", "netlab-flows-*.txt")
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(strings.Join(lines, "\n") + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// fileLineError finds ovs-ofctl's report of a bad line of the file path,
// "ovs-ofctl: PATH:LINE: MESSAGE", and returns the message on one line.
// The log lines ovs-ofctl writes before it ("...|ofp_actions|WARN|set_field
// vlan_vid lacks correct prerequisites") say why; they are appended.
func fileLineError(out []byte, path string) (line int, msg string, ok bool) {
	var why []string
	for l := range strings.Lines(string(out)) {
		if _, w, found := strings.Cut(l, "|WARN|"); found {
			why = append(why, strings.TrimSpace(w))
			continue
		}
		_, rest, found := strings.Cut(l, path+":")
		if !found || ok {
			continue
		}
		num, m, found := strings.Cut(rest, ": ")
		n, err := strconv.Atoi(num)
		if !found || err != nil {
			continue
		}
		line, msg, ok = n, strings.TrimSpace(m), true
	}
	if ok && len(why) > 0 {
		msg += ": " + strings.Join(why, "; ")
	}
	return line, msg, ok
}

// oneLine joins a program's output into one line.
func oneLine(out []byte) string {
	return strings.Join(strings.Fields(string(out)), " ")
}

// cookieFlows prefixes every flow with the cookie.
func cookieFlows(cookie uint64, flows []string) []string {
	out := make([]string, len(flows))
	for i, f := range flows {
		out[i] = fmt.Sprintf("cookie=%#x,%s", cookie, strings.TrimSpace(f))
	}
	return out
}

func cookieMatch(cookie uint64) string { return fmt.Sprintf("cookie=%#x/-1", cookie) }

// FlowSet is a bridge's static flows as Open vSwitch itself reads them.
type FlowSet struct {
	// Bundle says every flow fits OpenFlow 1.4, so the set is installed in
	// one atomic bundle. Otherwise some flow only OpenFlow 1.0 with Nicira
	// extensions carries (strip_vlan with no VLAN match is inconsistent in
	// 1.1 and later), and the set is changed one flow at a time.
	Bundle bool
	// Normal holds each flow (cookie included) in add-flow syntax as Open
	// vSwitch decodes it after encoding it in the protocol it is installed
	// with: how the switch will store it, and so how its dump will read.
	// `mod_vlan_vid:20` stays so in OpenFlow 1.0 but is
	// `set_field:4116->vlan_vid` through 1.4; `vlan_tci=0` reads
	// `vlan_tci=0x0000` or `vlan_tci=0x0000/0x1fff`.
	Normal []string
}

// Protocol is the -O value of the set's ovs-ofctl calls; "" lets
// ovs-ofctl negotiate, as `ovs-ofctl add-flow` does.
func (s FlowSet) Protocol() string {
	if s.Bundle {
		return bundleVersion
	}
	return ""
}

// NormalizeFlows asks Open vSwitch for the normal form of flows, marked with
// cookie, and whether they fit one bundle; no switch is needed. Equivalent
// to: `ovs-ofctl -O OpenFlow14 parse-flows FILE`, and when that finds no
// usable protocol, `ovs-ofctl parse-flows FILE`. A bad flow is a *FlowError.
func NormalizeFlows(cookie uint64, flows []string) (FlowSet, error) {
	return normalizeFlows(runLocal, cookie, flows)
}

func normalizeFlows(run func(string, ...string) ([]byte, error), cookie uint64, flows []string) (FlowSet, error) {
	if errs := precheckFlows(flows); len(errs) > 0 {
		return FlowSet{}, errs[0]
	}
	if len(flows) == 0 {
		return FlowSet{Bundle: true}, nil
	}
	path, err := writeFlowFile(cookieFlows(cookie, flows))
	if err != nil {
		return FlowSet{}, fmt.Errorf("normalize flows: %w", err)
	}
	defer os.Remove(path)
	set := FlowSet{Bundle: true}
	out, err := run("ovs-ofctl", "-O", bundleVersion, "parse-flows", path)
	if err != nil {
		set.Bundle = false
		out, err = run("ovs-ofctl", "parse-flows", path)
	}
	if err != nil {
		if line, msg, ok := fileLineError(out, path); ok && line >= 1 && line <= len(flows) {
			return FlowSet{}, &FlowError{Index: line - 1, Flow: flows[line-1], Msg: msg}
		}
		return FlowSet{}, fmt.Errorf("normalize flows: ovs-ofctl parse-flows: %w: %s", err, oneLine(out))
	}
	set.Normal, err = parsedFlowMods(out)
	if err != nil {
		return FlowSet{}, fmt.Errorf("normalize flows: %w", err)
	}
	if len(set.Normal) != len(flows) {
		return FlowSet{}, fmt.Errorf("normalize flows: ovs-ofctl parse-flows printed %d flows for %d", len(set.Normal), len(flows))
	}
	return set, nil
}

// parsedFlowMods reads the flow_mods `ovs-ofctl parse-flows` prints, such as
// "OFPT_FLOW_MOD (OF1.4) (xid=0x1): ADD table:3 priority=7,ip cookie:0x6
// idle:10 actions=drop" (lib/ofp-flow.c ofputil_flow_mod_format), back into
// add-flow syntax: "table=3,priority=7,ip,cookie=0x6,idle_timeout=10,actions=drop".
func parsedFlowMods(out []byte) ([]string, error) {
	var flows []string
	for l := range strings.Lines(string(out)) {
		_, rest, ok := strings.Cut(strings.TrimSpace(l), "): ADD ")
		if !ok {
			if strings.Contains(l, "FLOW_MOD") {
				return nil, fmt.Errorf("unexpected flow_mod %q", strings.TrimSpace(l))
			}
			continue // "usable protocols: ...", "chosen protocol: ..."
		}
		head, actions, ok := strings.Cut(" "+rest, " actions=")
		if !ok {
			return nil, fmt.Errorf("flow_mod without actions: %q", rest)
		}
		var fields []string
		for _, w := range strings.Fields(head) {
			k, v, colon := strings.Cut(w, ":")
			switch {
			case colon && k == "table":
				if v != "255" { // OpenFlow 1.0's "any table" adds to table 0
					fields = append(fields, "table="+v)
				}
			case colon && k == "cookie":
				fields = append(fields, "cookie="+v)
			case colon && k == "idle":
				fields = append(fields, "idle_timeout="+v)
			case colon && k == "hard":
				fields = append(fields, "hard_timeout="+v)
			case colon && k == "importance":
				fields = append(fields, "importance="+v)
			case colon && k == "pri":
				fields = append(fields, "priority="+v)
			case colon && (k == "buf" || k == "out_port" || k == "out_group"):
				// Not part of the stored flow.
			case w == "check_overlap":
				// A flow_mod flag, not part of the stored flow.
			default:
				fields = append(fields, w) // the match (with priority=), or a flag
			}
		}
		flows = append(flows, strings.Join(append(fields, "actions="+actions), ","))
	}
	return flows, nil
}

// StaticFlowsDiffer reports whether the bridge's flows carrying cookie
// (full mask) differ from flows by meaning, compared by Open vSwitch
// (match, priority, table, timeouts, actions; not counters). It changes
// nothing. First the file's flows as written against the dump (the default
// protocols): equal, they are in sync, and set is nil. Otherwise Open
// vSwitch's normal form of them (NormalizeFlows, returned as set) against
// the dump in the protocol they are installed with: Open vSwitch stores a
// flow in its own words, which depend on that protocol. Equivalent to:
//
//	ovs-ofctl --no-names dump-flows --no-stats BR cookie=C/-1 > CUR
//	ovs-ofctl diff-flows CUR FLOWS                  # exit 2 = differ
//	ovs-ofctl [-O OpenFlow14] parse-flows FLOWS     # the normal form, WANT
//	ovs-ofctl [-O OpenFlow14] --no-names dump-flows --no-stats BR cookie=C/-1 > CUR
//	ovs-ofctl diff-flows CUR WANT
func (c *Client) StaticFlowsDiffer(bridge string, cookie uint64, flows []string) (differ bool, set *FlowSet, err error) {
	differ, _, set, err = c.staticFlowsDiffer(bridge, cookie, flows)
	if err != nil {
		return false, nil, fmt.Errorf("ovs: bridge %s: compare flows: %w", bridge, err)
	}
	return differ, set, nil
}

// staticFlowsDiffer is StaticFlowsDiffer with diff-flows' lines of the
// normal form's comparison ("-" only on the switch, "+" only wanted).
func (c *Client) staticFlowsDiffer(bridge string, cookie uint64, flows []string) (bool, []string, *FlowSet, error) {
	if err := validName(bridge); err != nil {
		return false, nil, nil, err
	}
	if errs := precheckFlows(flows); len(errs) > 0 {
		return false, nil, nil, errs[0]
	}
	// As written: what a file of flows Open vSwitch stores unchanged (most
	// of them) costs, two ovs-ofctl runs. A failure here (a flow the
	// default parser refuses) is reported by the normal form's reading.
	if differ, _, err := c.compareFlows(bridge, cookie, "", cookieFlows(cookie, flows)); err == nil && !differ {
		return false, nil, nil, nil
	}
	set, err := normalizeFlows(c.exec, cookie, flows)
	if err != nil {
		return false, nil, nil, err
	}
	differ, diff, err := c.compareFlows(bridge, cookie, set.Protocol(), set.Normal)
	if err != nil {
		return false, nil, nil, err
	}
	return differ, diff, &set, nil
}

// compareFlows compares want (flows with cookie, add-flow syntax) with the
// bridge's flows carrying cookie, dumped in protocol proto ("": the
// default), and returns diff-flows' lines too. A dump the protocol cannot
// express (flows installed through OpenFlow 1.0 that 1.4 cannot carry), or
// that does not parse again, differs.
func (c *Client) compareFlows(bridge string, cookie uint64, proto string, want []string) (bool, []string, error) {
	args := []string{"--no-names", "dump-flows", "--no-stats", bridge, cookieMatch(cookie)}
	if proto != "" {
		args = append([]string{"-O", proto}, args...)
	}
	cur, err := c.OFCtl(args...)
	if err != nil {
		if strings.Contains(errOut(err), "usable flow formats") {
			return true, nil, nil
		}
		return false, nil, err
	}
	var curLines []string
	for l := range strings.Lines(string(cur)) {
		// Drop a reply header ("OFPST_FLOW reply (OF1.4) (xid=0x2):").
		if t := strings.TrimSpace(l); t != "" && strings.HasPrefix(l, " ") {
			curLines = append(curLines, t)
		}
	}
	have, err := writeFlowFile(curLines)
	if err != nil {
		return false, nil, err
	}
	defer os.Remove(have)
	wantFile, err := writeFlowFile(want)
	if err != nil {
		return false, nil, err
	}
	defer os.Remove(wantFile)
	out, err := c.OFCtl("diff-flows", have, wantFile)
	if err == nil {
		return false, nil, nil
	}
	if exitCode(err) == 2 { // ovs-ofctl diff-flows: "exit status 2 if there are differences"
		var diff []string
		for l := range strings.Lines(errOut(err) + "\n" + string(out)) {
			if t := strings.TrimSpace(l); strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+") {
				diff = append(diff, t)
			}
		}
		return true, diff, nil
	}
	if _, _, ok := fileLineError([]byte(errOut(err)), have); ok {
		// The dump in the set's protocol of flows installed through another
		// (pop_vlan with no VLAN match, from OpenFlow 1.0's strip_vlan) does
		// not parse again: they are not the set's.
		return true, nil, nil
	}
	return false, nil, err
}

// exitCode is the exit status of the program that failed with err (raw
// wraps it in a *goovs.Error, which has no Unwrap); -1 if unknown.
func exitCode(err error) int {
	var oe *goovs.Error
	if errors.As(err, &oe) {
		err = oe.Err
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// EnsureFlows makes the bridge's flows carrying cookie (full mask) equal to
// flows (ovs-ofctl syntax, without cookies; cookie is added to each). If they
// already mean the same (StaticFlowsDiffer) it changes nothing and returns
// false. Flows with any other cookie — learned MAC entries, flows added by
// hand or by a controller — are neither compared nor touched. A bad flow is
// reported as a *FlowError.
//
// When every flow fits OpenFlow 1.4 the set is replaced in one atomic
// bundle. Equivalent to:
//
//	ovs-ofctl -O OpenFlow14 --bundle add-flows BR FILE
//
// with FILE = `delete cookie=C/-1` (every table) followed by `add cookie=C,FLOW`
// for each flow. ovs-ofctl sends the bundle ORDERED|ATOMIC and ovs-vswitchd
// commits it as one new classifier version, so packets see either all old or
// all new flows, never an empty table; a flow the switch rejects aborts the
// whole bundle.
//
// Otherwise (a flow only OpenFlow 1.0 with Nicira extensions carries, and
// bundles need 1.3 or later) only what differs is sent, one flow_mod at a
// time, in one ovs-ofctl run: first the new and changed flows (an add
// replaces the flow of the same table, match and priority in place), then a
// strict delete of each flow of the lab's the file no longer has. A flow
// that stays is never missing; packets may meet old and new flows side by
// side while it runs. Equivalent to:
//
//	ovs-ofctl add-flows BR FILE    # add FLOW... then delete_strict cookie=C/-1,table=T,MATCH...
func (c *Client) EnsureFlows(bridge string, cookie uint64, flows []string) (changed bool, err error) {
	differ, diff, set, err := c.staticFlowsDiffer(bridge, cookie, flows)
	if err != nil {
		return false, fmt.Errorf("ovs: bridge %s: ensure flows: %w", bridge, err)
	}
	if !differ {
		return false, nil
	}
	var lines []string
	args := []string{"add-flows", bridge}
	if set.Bundle || diff == nil {
		if set.Bundle {
			args = []string{"-O", bundleVersion, "--bundle", "add-flows", bridge}
		}
		lines = append(lines, "delete "+cookieMatch(cookie))
		for _, f := range cookieFlows(cookie, flows) {
			lines = append(lines, "add "+f)
		}
	} else {
		lines = oneByOne(cookie, diff)
	}
	path, err := writeFlowFile(lines)
	if err != nil {
		return false, fmt.Errorf("ovs: bridge %s: ensure flows: %w", bridge, err)
	}
	defer os.Remove(path)
	if _, err := c.OFCtl(append(args, path)...); err != nil {
		if line, msg, ok := fileLineError([]byte(errOut(err)), path); ok && line >= 1 && line <= len(lines) {
			err = fmt.Errorf("%s: %s", lines[line-1], msg)
			if set.Bundle || diff == nil {
				// Line 1 is the delete; line n+2 is flows[n].
				if line >= 2 && line-2 < len(flows) {
					err = &FlowError{Index: line - 2, Flow: flows[line-2], Msg: msg}
				}
			}
		}
		return false, fmt.Errorf("ovs: bridge %s: ensure flows: %w", bridge, err)
	}
	return true, nil
}

// oneByOne turns diff-flows' lines (CUR against WANT) into flow_mods: an add
// of each wanted flow ("+"), then a strict delete, limited to the lab's
// cookie, of each current flow ("-") whose table, match and priority no
// wanted flow has (those the adds replaced are gone already).
// diff-flows prints a flow as "[table=T ]MATCH[ cookie=C][ idle_timeout=N]...
// actions=...", its match (with priority=) one word without spaces.
func oneByOne(cookie uint64, diff []string) []string {
	type key struct{ table, match string }
	keyOf := func(line string) key {
		var k key
		for _, w := range strings.Fields(line[1:]) {
			name, _, _ := strings.Cut(w, "=")
			switch {
			case name == "table" && k.table == "" && k.match == "":
				k.table = w
			case name == "cookie" || name == "idle_timeout" || name == "hard_timeout" || name == "importance" || name == "actions":
				return k
			default:
				if k.match == "" {
					k.match = w
				}
			}
		}
		return k
	}
	var adds, dels []string
	added := map[key]bool{}
	for _, l := range diff {
		if strings.HasPrefix(l, "+") {
			adds = append(adds, "add "+l[1:])
			added[keyOf(l)] = true
		}
	}
	for _, l := range diff {
		if !strings.HasPrefix(l, "-") {
			continue
		}
		k := keyOf(l)
		if added[k] {
			continue
		}
		// Without table= a delete reaches every table.
		fields := []string{cookieMatch(cookie), "table=0"}
		if k.table != "" {
			fields[1] = k.table
		}
		if k.match != "" {
			fields = append(fields, k.match)
		}
		dels = append(dels, "delete_strict "+strings.Join(fields, ","))
	}
	return append(adds, dels...)
}

// DeleteFlows deletes the bridge's flows carrying cookie (full mask), in
// every table; nil if there are none or the bridge is gone. Equivalent to:
// `ovs-ofctl del-flows BR cookie=C/-1`.
func (c *Client) DeleteFlows(bridge string, cookie uint64) error {
	if err := validName(bridge); err != nil {
		return fmt.Errorf("ovs: delete flows: %w", err)
	}
	if _, err := c.OFCtl("del-flows", bridge, cookieMatch(cookie)); err != nil {
		if strings.Contains(errOut(err), bridge+" is not a bridge or a socket") {
			return nil
		}
		return fmt.Errorf("ovs: bridge %s: delete flows with %s: %w", bridge, cookieMatch(cookie), err)
	}
	return nil
}

// Flow is one flow entry as ovs-ofctl dump-flows prints it.
type Flow struct {
	Table    int
	Priority int // 32768 (OFP_DEFAULT_PRIORITY) when the dump omits it
	Cookie   uint64
	// Packets and Bytes are the counters; IdleAge is seconds since the flow
	// last matched (-1 if the dump has no idle_age).
	Packets, Bytes                    uint64
	IdleTimeout, IdleAge, HardTimeout int
	Match                             string // without priority, "" for match-all
	Actions                           string
}

// DefaultPriority is OFP_DEFAULT_PRIORITY, which dumps do not print.
const DefaultPriority = 0x8000

// flowFlags are the flow_mod flags dump-flows prints as bare words.
var flowFlags = map[string]bool{
	"send_flow_rem": true, "check_overlap": true, "reset_counts": true,
	"no_packet_counts": true, "no_byte_counts": true,
}

// headerKeys are the fields dump-flows prints before the match
// (lib/ofp-flow.c ofputil_flow_stats_format), each followed by ", ".
var headerKeys = map[string]bool{
	"cookie": true, "duration": true, "table": true, "n_packets": true, "n_bytes": true,
	"idle_timeout": true, "hard_timeout": true, "importance": true, "idle_age": true, "hard_age": true,
}

// ParseFlows parses the text of `ovs-ofctl dump-flows` (with or without
// --no-stats, any OpenFlow version, numeric table and port names). Reply
// header lines ("NXST_FLOW reply (xid=0x4):") are skipped.
func ParseFlows(text []byte) ([]Flow, error) {
	var flows []Flow
	n := 0
	for l := range strings.Lines(string(text)) {
		n++
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(l, " ") {
			if strings.Contains(t, " reply") {
				continue
			}
			return nil, fmt.Errorf("parse flows: line %d: not a flow: %q", n, t)
		}
		f, err := parseFlowLine(t)
		if err != nil {
			return nil, fmt.Errorf("parse flows: line %d: %w: %q", n, err, t)
		}
		flows = append(flows, f)
	}
	return flows, nil
}

func parseFlowLine(s string) (Flow, error) {
	f := Flow{Priority: DefaultPriority, IdleAge: -1}
	i := strings.Index(s, "actions=")
	if i < 0 {
		return f, errors.New("no actions")
	}
	f.Actions = strings.TrimSpace(s[i+len("actions="):])
	left := strings.TrimSpace(s[:i])
	// The match (no spaces) comes last, directly before " actions=";
	// every header field before it ends in ", ", flags in " ".
	header := left
	if !strings.HasSuffix(left, ",") {
		j := strings.LastIndexByte(left, ' ')
		last := left[j+1:]
		k, _, _ := strings.Cut(last, "=")
		if last != "" && !flowFlags[last] && !headerKeys[k] {
			f.Match, header = last, left[:j+1]
		}
	}
	for _, w := range strings.Fields(strings.ReplaceAll(header, ",", " ")) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue // a flag
		}
		var err error
		switch k {
		case "cookie":
			f.Cookie, err = strconv.ParseUint(v, 0, 64)
		case "table":
			f.Table, err = strconv.Atoi(v)
		case "n_packets":
			f.Packets, err = strconv.ParseUint(v, 10, 64)
		case "n_bytes":
			f.Bytes, err = strconv.ParseUint(v, 10, 64)
		case "idle_timeout":
			f.IdleTimeout, err = strconv.Atoi(v)
		case "hard_timeout":
			f.HardTimeout, err = strconv.Atoi(v)
		case "idle_age":
			f.IdleAge, err = strconv.Atoi(v)
		}
		if err != nil {
			return f, fmt.Errorf("field %s: %w", k, err)
		}
	}
	if rest, ok := strings.CutPrefix(f.Match, "priority="); ok {
		p, m, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(p)
		if err != nil {
			return f, fmt.Errorf("field priority: %w", err)
		}
		f.Priority, f.Match = n, m
	}
	return f, nil
}

// DumpFlows reads every flow of the bridge with its counters. Equivalent
// to: `ovs-ofctl --no-names dump-flows BR` (the default protocol
// negotiation gives Nicira flow stats, which include idle_age).
func (c *Client) DumpFlows(bridge string) ([]Flow, error) {
	return c.dumpFlows(bridge)
}

func (c *Client) dumpFlows(bridge string, filter ...string) ([]Flow, error) {
	if err := validName(bridge); err != nil {
		return nil, fmt.Errorf("ovs: dump flows: %w", err)
	}
	out, err := c.OFCtl(append([]string{"--no-names", "dump-flows", bridge}, filter...)...)
	if err != nil {
		return nil, fmt.Errorf("ovs: bridge %s: dump flows: %w", bridge, err)
	}
	flows, err := ParseFlows(out)
	if err != nil {
		return nil, fmt.Errorf("ovs: bridge %s: dump flows: %w", bridge, err)
	}
	return flows, nil
}

// ForeignFlows returns the bridge's flows whose cookie is none of cookies,
// e.g. for status: "flows that are not the lab's" (pass the static and the
// learn cookie). Equivalent to: `ovs-ofctl --no-names dump-flows BR`, filtered.
func (c *Client) ForeignFlows(bridge string, cookies ...uint64) ([]Flow, error) {
	flows, err := c.dumpFlows(bridge)
	if err != nil {
		return nil, err
	}
	var out []Flow
	for _, f := range flows {
		if !slices.Contains(cookies, f.Cookie) {
			out = append(out, f)
		}
	}
	return out, nil
}

// MACEntry is one MAC address the learning switch has learned.
type MACEntry struct {
	MAC  string
	Port int // OpenFlow port; LearnedLocal (0xffff) for the bridge's LOCAL port
	// IdleAge is seconds since a packet went to the MAC (-1 if unknown),
	// IdleTimeout when the entry expires without traffic.
	IdleAge, IdleTimeout int
	Packets              uint64
	// VLAN is the VLAN the entry is scoped to (a learn() that matched
	// NXM_OF_VLAN_TCI[0..11]); 0 for none.
	VLAN int
}

// LearnedMACs reads the learned MAC entries of the bridge: the flows of
// table carrying cookie, `dl_dst=MAC actions=load:PORT->NXM_NX_REG0[0..15]`
// as learn() writes them, sorted by MAC. Other flows there are ignored.
// Equivalent to: `ovs-ofctl --no-names dump-flows BR table=T,cookie=C/-1`.
func (c *Client) LearnedMACs(bridge string, table int, cookie uint64) ([]MACEntry, error) {
	flows, err := c.dumpFlows(bridge, fmt.Sprintf("table=%d,%s", table, cookieMatch(cookie)))
	if err != nil {
		return nil, err
	}
	return learnedMACs(flows, table, cookie), nil
}

func learnedMACs(flows []Flow, table int, cookie uint64) []MACEntry {
	var out []MACEntry
	for _, f := range flows {
		if f.Table != table || f.Cookie != cookie {
			continue
		}
		if e, ok := MACEntryOf(f); ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b MACEntry) int { return strings.Compare(a.MAC, b.MAC) })
	return out
}

// MACEntryOf reads a flow a MAC-learning learn() made: its match holds one
// whole destination MAC (dl_dst= or eth_dst=; a VLAN too when the learn
// matched NXM_OF_VLAN_TCI[0..11], as vlan_tci=0x0014/0x0fff or dl_vlan=20),
// and its actions load the port into reg0 or output to it. False for any
// other flow.
func MACEntryOf(f Flow) (MACEntry, bool) {
	e := MACEntry{IdleAge: f.IdleAge, IdleTimeout: f.IdleTimeout, Packets: f.Packets}
	for _, field := range strings.Split(f.Match, ",") {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "dl_dst", "eth_dst":
			e.MAC = v
		case "dl_vlan":
			n, err := strconv.Atoi(v)
			if err == nil {
				e.VLAN = n
			}
		case "vlan_tci":
			tci, mask, _ := strings.Cut(v, "/")
			t, err1 := strconv.ParseUint(tci, 0, 16)
			m, err2 := strconv.ParseUint(mask, 0, 16)
			if err1 == nil && (mask == "" || err2 == nil && m&0x0fff == 0x0fff) {
				e.VLAN = int(t & 0x0fff)
			}
		}
	}
	port, ok := loadedReg0(f.Actions)
	if !ok {
		n, err := strconv.ParseUint(strings.TrimPrefix(f.Actions, "output:"), 10, 16)
		port, ok = int(n), err == nil && strings.HasPrefix(f.Actions, "output:")
	}
	if e.MAC == "" || strings.Contains(e.MAC, "/") || !ok {
		return MACEntry{}, false
	}
	e.Port = port
	return e, true
}

// loadedReg0 reads the port from "load:0x2->NXM_NX_REG0[0..15]" (or the
// OpenFlow 1.2+ spelling "set_field:0x2->reg0").
func loadedReg0(actions string) (int, bool) {
	var v string
	if s, ok := strings.CutPrefix(actions, "load:"); ok {
		v, ok = strings.CutSuffix(s, "->NXM_NX_REG0[0..15]")
		if !ok {
			return 0, false
		}
	} else if s, ok := strings.CutPrefix(actions, "set_field:"); ok {
		v, ok = strings.CutSuffix(s, "->reg0")
		if !ok {
			return 0, false
		}
	} else {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 0, 16)
	return int(n), err == nil
}

// Trace runs a packet described by flow (ovs-ofctl flow syntax, e.g.
// "in_port=1,dl_src=...,dl_dst=...") through the bridge's tables without
// sending it and returns ovs-vswitchd's explanation. Equivalent to:
// `ovs-appctl -t RUNDIR/ovs-vswitchd.PID.ctl ofproto/trace BR FLOW` (the
// instance's own daemon, private or system).
func (c *Client) Trace(bridge, flow string) (string, error) {
	if err := validName(bridge); err != nil {
		return "", fmt.Errorf("ovs: trace: %w", err)
	}
	var args []string
	if pid, ok := daemonPID(c.ovsDir, vswitchd); ok {
		args = append(args, "-t", filepath.Join(c.ovsDir, fmt.Sprintf("%s.%d.ctl", vswitchd, pid)))
	}
	out, err := c.appctl(append(args, "ofproto/trace", bridge, flow)...)
	if err != nil {
		return "", fmt.Errorf("ovs: bridge %s: trace %s: %w", bridge, flow, err)
	}
	return string(out), nil
}

// OFPorts returns the OpenFlow port number of each port of the bridge
// (LOCAL not included; -1 for a port OVS could not open). Equivalent to the
// Interface part of Observe.
func (c *Client) OFPorts(bridge string) (map[string]int, error) {
	brs, err := c.Observe()
	if err != nil {
		return nil, err
	}
	b, ok := brs[bridge]
	if !ok {
		return nil, fmt.Errorf("ovs: bridge %s: no such bridge", bridge)
	}
	out := make(map[string]int, len(b.Ports))
	for name, p := range b.Ports {
		out[name] = p.OFPort
	}
	return out, nil
}
