package ovs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
)

// fakeDB is an ovsdb-server that answers each transaction with answer
// and records the operations it was sent, for the wait's unit tests.
type fakeDB struct {
	mu     sync.Mutex
	txns   [][]map[string]any
	answer func(n int, ops []map[string]any) []any // n: the transaction's index
}

func (f *fakeDB) sent() [][]map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]map[string]any(nil), f.txns...)
}

// startFakeDB listens on a socket of the test's own and returns a client
// that talks to it over the protocol.
func startFakeDB(t *testing.T, f *fakeDB, timeout time.Duration) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "db.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		dec, enc := json.NewDecoder(conn), json.NewEncoder(conn)
		for {
			var req struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params []json.RawMessage
			}
			if dec.Decode(&req) != nil {
				return
			}
			var ops []map[string]any
			for _, p := range req.Params[1:] {
				var o map[string]any
				if json.Unmarshal(p, &o) != nil {
					return
				}
				ops = append(ops, o)
			}
			f.mu.Lock()
			n := len(f.txns)
			f.txns = append(f.txns, ops)
			f.mu.Unlock()
			if enc.Encode(map[string]any{"id": req.ID, "result": f.answer(n, ops), "error": nil}) != nil {
				return
			}
		}
	}()
	c := &Client{info: state.OVSInfo{DB: "unix:" + sock}, timeout: timeout}
	t.Cleanup(func() { c.Close() })
	return c
}

// ofportRow answers a select of ofportSelects: the port's row.
func ofportRow(name string, ofport any, errMsg string) any {
	e := any([]any{"set", []any{}})
	if errMsg != "" {
		e = errMsg
	}
	return map[string]any{"rows": []any{map[string]any{"name": name, "ofport": ofport, "error": e}}}
}

func TestWaitCheckOFPortsOneTransaction(t *testing.T) {
	ports := []PortSpec{{Name: "p1", OFPort: 1}, {Name: "p2"}}
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		return []any{map[string]any{}, ofportRow("p1", 1, ""), ofportRow("p2", 7, "")}
	}}
	c := startFakeDB(t, f, 5*time.Second)
	if err := c.waitCheckOFPorts(42, "br", ports, false); err != nil {
		t.Fatal(err)
	}
	txns := f.sent()
	if len(txns) != 1 {
		t.Fatalf("%d transactions, want 1 (the wait with the selects)", len(txns))
	}
	ops := txns[0]
	if len(ops) != 3 || ops[0]["op"] != "wait" || ops[1]["op"] != "select" || ops[2]["op"] != "select" {
		t.Fatalf("transaction %v: want a wait, then a select per port", ops)
	}
	if w := fmt.Sprint(ops[0]["where"]); w != "[[cur_cfg < 42]]" {
		t.Errorf("wait where %s, want cur_cfg < 42", w)
	}
}

func TestWaitCheckOFPortsErrorsFromTheWaitsTransaction(t *testing.T) {
	ports := []PortSpec{{Name: "p1"}, {Name: "p2", OFPort: 5}}
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		return []any{map[string]any{}, ofportRow("p1", -1, "could not open network device p1 (No such device)"), ofportRow("p2", 6, "")}
	}}
	c := startFakeDB(t, f, 5*time.Second)
	err := c.waitCheckOFPorts(3, "br", ports, false)
	var pe *PortError
	if !errors.As(err, &pe) || pe.Port != "p1" || !strings.Contains(pe.Reason, "No such device") {
		t.Errorf("error %v: want p1's PortError with the interface's error", err)
	}
	if err == nil || !strings.Contains(err.Error(), "got ofport 6, requested 5") {
		t.Errorf("error %v: want p2's ofport taken", err)
	}
}

// A wait that times out while ovs-vswitchd did apply the change (cur_cfg
// read after it has reached next) still reads the ports, in a transaction
// of their own.
func TestWaitCheckOFPortsAfterATimedOutWait(t *testing.T) {
	ports := []PortSpec{{Name: "p1"}}
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		switch n {
		case 0: // the wait and the select: the wait timed out
			return []any{map[string]any{"error": "timed out"}, nil}
		case 1: // cur_cfg
			return []any{map[string]any{"rows": []any{map[string]any{"cur_cfg": 9}}}}
		default:
			return []any{ofportRow("p1", 3, "")}
		}
	}}
	c := startFakeDB(t, f, 5*time.Second)
	if err := c.waitCheckOFPorts(9, "br", ports, false); err != nil {
		t.Fatal(err)
	}
	txns := f.sent()
	if len(txns) != 3 || len(txns[2]) != 1 || txns[2][0]["op"] != "select" || txns[2][0]["table"] != "Interface" {
		t.Fatalf("transactions %v: want the wait, the look at cur_cfg, then the port's select alone", txns)
	}
}

func TestWaitConfiguredGivesUpAtTheDeadline(t *testing.T) {
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		if ops[0]["op"] == "wait" {
			return []any{map[string]any{"error": "timed out"}}
		}
		return []any{map[string]any{"rows": []any{map[string]any{"cur_cfg": 1}}}}
	}}
	c := startFakeDB(t, f, 50*time.Millisecond)
	err := c.waitConfigured(2, 0)
	if err == nil || !strings.Contains(err.Error(), "did not apply the change") {
		t.Errorf("error %v: want the deadline's", err)
	}
}

// slowSwitch is a fake ovsdb-server in front of an ovs-vswitchd that
// applies configuration next only after delay from the transaction that
// asked for it (the one whose answer setup gives, which must end with
// bumpCfg's next_cfg); setup answers the transactions before that.
func slowSwitch(next int64, delay time.Duration, setup func(n int, ops []map[string]any) []any) *fakeDB {
	var mu sync.Mutex
	var committed time.Time
	commitAt := -1
	return &fakeDB{answer: func(n int, ops []map[string]any) []any {
		mu.Lock()
		defer mu.Unlock()
		if commitAt < 0 {
			res := setup(n, ops)
			if last := ops[len(ops)-1]; last["op"] == "select" && fmt.Sprint(last["columns"]) == "[next_cfg]" {
				commitAt, committed = n, time.Now()
			}
			return res
		}
		applied := time.Since(committed) > delay
		if ops[0]["op"] == "wait" {
			if applied {
				return []any{map[string]any{}}
			}
			time.Sleep(10 * time.Millisecond) // as a wait with a timeout would
			return []any{map[string]any{"error": "timed out"}}
		}
		cur := next - 1
		if applied {
			cur = next
		}
		return []any{map[string]any{"rows": []any{map[string]any{"cur_cfg": cur}}}}
	}}
}

// answers is what a transaction of ops gets: each operation an empty
// result but the last, bumpCfg's select, which gets next_cfg.
func answers(ops []map[string]any, next int64) []any {
	res := make([]any, len(ops))
	for i := range res {
		res[i] = map[string]any{"count": 1}
	}
	res[len(res)-1] = map[string]any{"rows": []any{map[string]any{"next_cfg": next}}}
	return res
}

func uuidN(i int) []any { return []any{"uuid", fmt.Sprintf("00000000-0000-0000-0000-%012d", i)} }

// uuids are n row ids (uuidN 0 to n-1).
func uuids(n int) []any {
	out := []any{}
	for i := range n {
		out = append(out, uuidN(i))
	}
	return out
}

// A down of a big lab on a slow machine: ovs-vswitchd took 13 s to remove
// 1,000 ports, and the wait for it failed at the client's fixed timeout.
// The wait for a bridges' deletion now allows waitPerPort more for each of
// their ports: here a client timeout of 50 ms, a bridge of 5 ports, and an
// ovs-vswitchd that applies the deletion 250 ms after it is committed.
func TestBridgesDeletionWaitGrowsWithTheirPorts(t *testing.T) {
	const lab, next = "nltlab", 7
	ports := uuids(5)
	f := slowSwitch(next, 250*time.Millisecond, func(n int, ops []map[string]any) []any {
		if n == 0 { // the lab's bridges and ports
			var portRows []any
			for _, p := range ports {
				portRows = append(portRows, map[string]any{"_uuid": p})
			}
			return []any{
				map[string]any{"rows": []any{map[string]any{"_uuid": uuidN(100), "name": "nltbr", "ports": []any{"set", ports}}}},
				map[string]any{"rows": portRows},
			}
		}
		// The deletion: guard, mutate, bridges left, comment, next_cfg.
		res := answers(ops, next)
		res[2] = map[string]any{"rows": []any{map[string]any{"bridges": []any{"set", []any{}}}}}
		return res
	})
	c := startFakeDB(t, f, 50*time.Millisecond)
	d, ok, err := c.StartDeleteLabBridges(lab)
	if err != nil || !ok || d.Wait == nil {
		t.Fatalf("StartDeleteLabBridges = %+v, %v, %v", d, ok, err)
	}
	if err := d.Wait(); err != nil {
		t.Fatalf("wait for the deletion of a bridge of 5 ports (applied after 250 ms, client timeout 50 ms + 5 × %s): %v", waitPerPort, err)
	}
}

// A bridge whose datapath changes has every port opened again: the wait
// allows for its ports as for new ones.
func TestDatapathChangeWaitGrowsWithThePorts(t *testing.T) {
	const lab, next = "nltlab", 9
	ports := uuids(5)
	f := slowSwitch(next, 250*time.Millisecond, func(n int, ops []map[string]any) []any {
		if n == 0 { // the bridge's row: the system datapath
			return []any{map[string]any{"rows": []any{map[string]any{"_uuid": uuidN(100), "name": "nltbr", "datapath_type": "system",
				"fail_mode": []any{"set", []any{}}, "external_ids": []any{"map", []any{[]any{state.OVSLabKey, lab}}}, "ports": []any{"set", ports}}}}}
		}
		return answers(ops, next) // the guard, the update, next_cfg
	})
	c := startFakeDB(t, f, 50*time.Millisecond)
	if err := c.ensureBridgeRPC(BridgeSpec{Name: "nltbr", Lab: lab}, DatapathNetdev); err != nil {
		t.Fatalf("a datapath change on a bridge of 5 ports (applied after 250 ms, client timeout 50 ms + 5 × %s): %v", waitPerPort, err)
	}
	if txns := f.sent(); !strings.Contains(fmt.Sprint(txns[1][1]["row"]), "datapath_type:netdev") {
		t.Errorf("update %v: want the datapath changed", txns[1])
	}
}

func TestWaitAllowance(t *testing.T) {
	ports := []PortSpec{{Name: "a"}, {Name: "b", Type: PortTypeSystem}, {Name: "c", Type: "afxdp-nonpmd"}}
	if got, want := waitAllowance(ports), 2*waitPerPort+waitPerAFXDPPort; got != want {
		t.Errorf("waitAllowance = %s, want %s", got, want)
	}
	if got := waitAllowance(nil); got != 0 {
		t.Errorf("waitAllowance(nil) = %s, want 0", got)
	}
}
