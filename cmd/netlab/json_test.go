package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/doctor"
	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/internal/timeline"
)

var logSample = timeline.Entry{Step: 2, Event: 0, Occurrence: 1, Action: "link-down n2/eth0", Result: timeline.Done, Actions: 1,
	Planned:  time.Date(2026, 12, 6, 10, 0, 12, 0, time.UTC),
	Started:  time.Date(2026, 12, 6, 10, 0, 12, 1200000, time.UTC),
	Finished: time.Date(2026, 12, 6, 10, 0, 12, 15700000, time.UTC)}

var timelinesSample = []engine.TimelineStatus{{Name: "flap", State: "running", Start: "2026-12-06T10:00:10.000Z", Steps: 10, Done: 3,
	Next: &engine.NextStep{Step: 3, Action: "link-up n2/eth0", Planned: "2026-12-06T10:00:12.500Z"}, Last: &logSample, PID: 4711, Restarts: 1,
	Exit: "killed by SIGKILL (killed)", Log: "/run/netlab/labs/blue-red/timelines/flap.log", Events: "/run/netlab/labs/blue-red/timelines/flap.events"},
	{Name: "nemesis", State: "not started", Steps: -1, Log: "/run/netlab/labs/blue-red/timelines/nemesis.log", Events: "/run/netlab/labs/blue-red/timelines/nemesis.events"}}

// The --json outputs are an interface other programs parse: their shapes
// (field names, nesting) are golden files, so a change is a visible diff.
func TestJSONShapes(t *testing.T) {
	route := state.Route{To: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.254")}
	cases := map[string]any{
		"status": []*engine.LabStatus{{
			Lab: "blue-red", File: "/labs/blue-red.yaml", Prefix: "t1-",
			OVS: &state.OVSInfo{Running: true, Private: true, DB: "unix:/run/netlab/ovs/db.sock", AFXDP: true},
			Namespaces: []engine.NSStatus{{
				Name:            "blue",
				Links:           []engine.LinkStatus{{Name: "veth1", Kind: "veth", State: "up", LinkLayer: "link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff", MTU: 1500, Addresses: []string{"10.0.0.1/24"}}},
				Routes:          []string{"default via 10.0.0.254"},
				NAT:             []state.NATRuleStats{{NATRule: state.NATRule{Source: netip.MustParsePrefix("10.0.0.0/24"), Out: "wan0"}, Packets: 3, Bytes: 180}},
				Processes:       []engine.ProcessStatus{{Device: "tun0", PID: 42, Spec: "--queues 2", Queues: 2, Packets: 10, Bytes: 840}},
				PartitionedFrom: []state.PartitionDrop{{From: netip.MustParseAddr("10.0.0.2"), Packets: 7}},
			}, {
				Name:  "red",
				Links: []engine.LinkStatus{{Name: "veth3", Kind: "veth", State: "up", MTU: 1500, OperState: "down", NoCarrier: true, CablePulled: true}},
			}, {
				Name:  "host",
				Links: []engine.LinkStatus{{Name: "veth2", Kind: "vxlan", State: "down", MTU: 1450, OperState: "down", HeldDownFor: "red/veth3"}},
			}},
			Bridges:     []engine.BridgeStatus{{Name: "ovsbr0", Type: "ovs", Datapath: "netdev", FailMode: "secure", Ports: []engine.PortStatus{{Name: "veth0", OFPort: 1, Type: "afxdp-nonpmd"}, {Name: "veth2", OFPort: 2, Type: "system", AFXDPError: "ovs: add port veth2 to ovsbr0: could not open network device veth2 (Operation not permitted)"}}}},
			HostSysctls: []engine.SysctlStatus{{Key: "net.ipv4.ip_forward", Value: "1", Previous: "0"}},
			Drift:       []string{"ip -n blue addr replace 10.0.0.1/24 dev veth1"},
			Machine:     "a",
			Tunnels: []engine.TunnelStatus{{Name: "veth2", NS: "host", Bridge: "ovsbr0", VNI: 12642948, Local: "192.0.2.1", Remotes: []string{"192.0.2.2"},
				To: "red/veth3 on machine b", MTU: 1450, Underlay: "eth1", UnderlayMTU: 1500, Present: true, RxPackets: 12, TxPackets: 14}},
			Remote:     []engine.RemoteStatus{{Kind: "namespace", Name: "red", Machine: "b", Address: "192.0.2.2"}},
			LinksDown:  []engine.CableStatus{{Interface: "red/veth3", Device: "host/veth2"}},
			Partitions: []engine.PartitionStatus{{Name: "p1", A: []string{"red"}, B: []string{"blue"}, OneWay: true, Dropped: 7}},
			Timelines:  timelinesSample,
		}},
		"timeline":     timelinesSample,
		"timeline-log": []timeline.Entry{logSample},
		"plan": plan.Plan{
			{Step: plan.AddNamespace{NS: "blue", Alias: "netlab:blue-red"}},
			{Step: plan.AddAddr{NS: "blue", Link: "veth1", Addr: netip.MustParsePrefix("10.0.0.1/24")}},
			{Step: plan.ReplaceRoute{NS: "blue", Route: &route}},
			{Step: plan.AddPorts{Bridge: "ovsbr0", Ports: []plan.Port{{Name: "veth0", OFPort: 1, Type: "afxdp-nonpmd", Auto: true}}}},
			{Step: plan.LinkDown{NS: "host", Link: "veth2", Cable: "red/veth3"}},
			{Step: plan.SetPartition{NS: "blue", Drop: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00:10::2")}, Partitions: []string{"p1"}}},
		},
		"down-done": downDone{Event: "done", Lab: "blue-red", DownResult: engine.DownResult{Removed: []string{"namespace blue"}, LeftAlone: []string{"namespace red: is not netlab's (no marker)"}}},
		"down-plan": downPlan{Lab: "blue-red", Actions: plan.Plan{
			{Step: plan.DelBridge{Bridge: "ovsbr0"}, Lab: "blue-red"},
			{Step: plan.StopNSProcesses{Namespaces: []string{"blue"}}, Lab: "blue-red"},
			{Step: plan.DelNamespace{NS: "blue"}, Lab: "blue-red"},
		}, LeftAlone: []string{"namespace red: is not netlab's (no marker)"}, Notes: []string{"then netlab's private Open vSwitch stops if no other lab uses it"}},
		"up-done": upDone{Event: "done", Lab: "blue-red", Actions: 39},
		"event":   engine.Event{Kind: "action", Lab: "blue-red", Done: 3, Total: 39, Action: "ip netns add blue && ip -n blue link set lo alias netlab:blue-red up"},
		"flows": []engine.BridgeFlows{{Bridge: "ovsbr0",
			Flows: []engine.FlowRow{{Table: 0, Priority: 50, Cookie: "0x1", Owner: "lab", Packets: 4, Bytes: 336, Match: "in_port=1", Actions: "resubmit(,1)"}},
			MACs:  []engine.MACRow{{MAC: "02:00:00:00:00:01", Port: 1, PortName: "veth0", Namespace: "blue", Interface: "veth1", IdleAge: 3, Packets: 2, Table: 10, VLAN: 20}}}},
		"check": checkJSON{Lab: "blue-red", Passed: 1, Failed: 0, Results: []checkRow{{Index: 0, From: "blue", To: "red", Addr: "10.0.0.2", Check: "ping", Want: true, Got: true, Pass: true, Detail: "2/2 replies", Millis: 3}}},
		"sandboxes": []sandboxRow{{Sandbox: &sandbox.Sandbox{Name: "default", PID: 4242, Start: 123456, UserNS: true, NetNS: 4026532244,
			Created: time.Date(2026, 12, 3, 9, 36, 14, 0, time.UTC)}, Alive: true, Labs: []string{"blue-red"}},
			{Sandbox: &sandbox.Sandbox{Name: "cut", Incomplete: "its making was cut short (no keeper.json)"}, Labs: []string{}}},
		"doctor": []doctor.Finding{{Check: "CAP_NET_ADMIN", Level: doctor.OK, What: "present"}, {Check: "ip", Level: doctor.Fatal, What: "missing", Fix: "apt-get install iproute2"}},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
			b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			path := filepath.Join("testdata", name+".json")
			testkit.Golden(t, path, append(b, '\n'))
		})
	}
}
