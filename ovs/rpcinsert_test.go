package ovs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cfgResults answers a transaction that ends with bumpCfg: one empty
// result per operation, the last the select of next_cfg.
func cfgResults(ops []map[string]any, next int) []any {
	res := make([]any, len(ops))
	for i := range res {
		res[i] = map[string]any{}
	}
	res[len(res)-1] = map[string]any{"rows": []any{map[string]any{"next_cfg": next}}}
	return res
}

// wantOps checks a transaction's operations and tables, in order.
func wantOps(t *testing.T, txn []map[string]any, want string) {
	t.Helper()
	var kinds []string
	for _, o := range txn {
		kinds = append(kinds, fmt.Sprint(o["op"], " ", o["table"]))
	}
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("operations %s\nwant %s", got, want)
	}
}

// New ports go in one transaction, nothing read first: guarded by the
// bridge's name and the lab's marker, the bridge's ports mutated by name.
func TestStartEnsurePortsNewInOneRoundTrip(t *testing.T) {
	ports := []PortSpec{{Name: "p1", Lab: "lab", OFPort: 1, Type: PortTypeSystem}, {Name: "p2", Lab: "lab", Type: PortTypeSystem}}
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any { return cfgResults(ops, 7) }}
	c := startFakeDB(t, f, 5*time.Second)
	finish, err := c.StartEnsurePorts("br", ports)
	if err != nil || finish == nil {
		t.Fatalf("StartEnsurePorts: %v", err)
	}
	txns := f.sent()
	if len(txns) != 1 {
		t.Fatalf("%d transactions before the wait, want 1: %v", len(txns), txns)
	}
	wantOps(t, txns[0], "wait Bridge,insert Interface,insert Port,insert Interface,insert Port,mutate Bridge,comment <nil>,mutate Open_vSwitch,select Open_vSwitch")
	if w := fmt.Sprint(txns[0][0]["where"]); w != "[[name == br] [external_ids includes [map [[netlab-lab lab]]]]]" {
		t.Errorf("guard where %s: want the bridge by name with the lab's marker", w)
	}
	if w := fmt.Sprint(txns[0][5]["where"]); w != "[[name == br]]" {
		t.Errorf("ports mutated where %s: want the bridge by name", w)
	}
}

// When the one transaction is refused (a port is there already, or the
// bridge is not the lab's), the ports are read and ensured as before: the
// present one updated, the new one inserted, the bridge by its id.
func TestStartEnsurePortsPresentReadThenEnsured(t *testing.T) {
	ports := []PortSpec{{Name: "p1", Lab: "lab", Type: PortTypeSystem}, {Name: "p2", Lab: "lab", Type: PortTypeSystem}}
	marker := []any{"map", []any{[]any{"netlab-lab", "lab"}}}
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		switch n {
		case 0: // the inserts: p1's name is taken
			res := make([]any, len(ops))
			for i := range res {
				res[i] = map[string]any{}
			}
			return append(res, map[string]any{"error": "constraint violation", "details": "Transaction causes multiple rows in \"Port\" table to have identical values (\"p1\") for index on column \"name\"."})
		case 1: // the bridge, then each port by name
			return []any{
				map[string]any{"rows": []any{map[string]any{"_uuid": []any{"uuid", "b0000000-0000-4000-8000-000000000000"}, "external_ids": marker}}},
				map[string]any{"rows": []any{map[string]any{"_uuid": []any{"uuid", "a0000000-0000-4000-8000-000000000000"}, "external_ids": marker}}},
				map[string]any{"rows": []any{}},
			}
		case 2: // which bridge has p1
			return []any{map[string]any{"rows": []any{map[string]any{"name": "br"}}}}
		default:
			return cfgResults(ops, 8)
		}
	}}
	c := startFakeDB(t, f, 5*time.Second)
	if _, err := c.StartEnsurePorts("br", ports); err != nil {
		t.Fatalf("StartEnsurePorts: %v", err)
	}
	txns := f.sent()
	if len(txns) != 4 {
		t.Fatalf("%d transactions, want 4 (the inserts, refused; the reads; the ensure): %v", len(txns), txns)
	}
	wantOps(t, txns[3], "wait Bridge,update Interface,mutate Port,insert Interface,insert Port,mutate Bridge,comment <nil>,mutate Open_vSwitch,select Open_vSwitch")
	if w := fmt.Sprint(txns[3][5]["where"]); !strings.Contains(w, "_uuid == [uuid b0000000") {
		t.Errorf("ports mutated where %s: want the bridge by its id", w)
	}
}

// AF_XDP ports beyond one chunk, or ports of two labs, take the path that
// reads first.
func TestStartEnsurePortsReadsFirstWhenNotOneTransaction(t *testing.T) {
	var many []PortSpec
	for i := range maxAFXDPPerTxn + 1 {
		many = append(many, PortSpec{Name: fmt.Sprintf("x%d", i), Lab: "lab", Type: PortTypeAFXDPNonPMD})
	}
	for _, ports := range [][]PortSpec{many, {{Name: "p1", Lab: "a"}, {Name: "p2", Lab: "b"}}} {
		f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
			res := make([]any, len(ops))
			for i := range res {
				res[i] = map[string]any{"rows": []any{}}
			}
			return res
		}}
		c := startFakeDB(t, f, 5*time.Second)
		_, err := c.StartEnsurePorts("br", ports)
		if err == nil || !strings.Contains(err.Error(), "no such bridge") {
			t.Errorf("error %v: want no such bridge, from the read", err)
		}
		if txns := f.sent(); len(txns) != 1 || txns[0][0]["op"] != "select" {
			t.Errorf("transactions %v: want the read alone", txns)
		}
	}
}

// observeAnswer answers observeOps with a bridge br of n ports.
func observeAnswer(n int) []any {
	var out []any
	for _, rows := range observeCells(n) {
		rs := []any{}
		for _, r := range rows {
			rs = append(rs, r)
		}
		out = append(out, map[string]any{"rows": rs})
	}
	return out
}

// With observe, the wait's transaction reads the switch too, and the next
// Observe takes that answer without sending anything; a transaction sent
// in between (which may have changed the switch) makes it read afresh.
func TestWaitCheckOFPortsObserving(t *testing.T) {
	ports := []PortSpec{{Name: "p0000", OFPort: 1}}
	for _, between := range []bool{false, true} {
		f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
			switch {
			case ops[0]["op"] == "wait":
				return append([]any{map[string]any{}, ofportRow("p0000", 1, "")}, observeAnswer(3)...)
			case ops[0]["table"] == "Bridge" && len(ops) == len(observeTables):
				return observeAnswer(2)
			default:
				return []any{map[string]any{"rows": []any{}}}
			}
		}}
		c := startFakeDB(t, f, 5*time.Second)
		if err := c.waitCheckOFPorts(5, "br", ports, true); err != nil {
			t.Fatal(err)
		}
		txns := f.sent()
		if len(txns) != 1 || len(txns[0]) != 2+len(observeTables) {
			t.Fatalf("transactions %v: want one, the wait, the port's select and observe's", txns)
		}
		if between {
			if _, err := c.transact(op{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"cur_cfg"}}); err != nil {
				t.Fatal(err)
			}
		}
		brs, err := c.Observe()
		if err != nil {
			t.Fatal(err)
		}
		wantSent, wantPorts := 1, 3 // the kept answer
		if between {
			wantSent, wantPorts = 3, 2 // the select, then observe's own
		}
		if got := len(f.sent()); got != wantSent {
			t.Errorf("between %v: %d transactions, want %d", between, got, wantSent)
		}
		if got := len(brs["br"].Ports); got != wantPorts {
			t.Errorf("between %v: %d ports observed, want %d", between, got, wantPorts)
		}
		// Kept once: the next observe asks.
		if _, err := c.Observe(); err != nil || len(f.sent()) != wantSent+1 {
			t.Errorf("between %v: observing again sent %d transactions in all, want %d", between, len(f.sent()), wantSent+1)
		}
	}
}

// setSize counts a set column's atoms however the server writes the set:
// ["set", [...]] for none or several, the atom alone for one.
func TestSetSize(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want int
	}{
		{[]any{"set", []any{}}, 0},
		{[]any{"uuid", "a0000000-0000-4000-8000-000000000000"}, 1},
		{[]any{"set", []any{[]any{"uuid", "a"}, []any{"uuid", "b"}}}, 2},
	} {
		if got, err := setSize(tc.v); err != nil || got != tc.want {
			t.Errorf("setSize(%v) = %d, %v; want %d", tc.v, got, err, tc.want)
		}
	}
	// No column at all is not an empty set: a malformed answer says so.
	if n, err := setSize(nil); err == nil {
		t.Errorf("setSize(nil) = %d, nil; want an error", n)
	}
}

// A transaction another goroutine sends while the wait's answer is on its
// way (after the wait's, so answered after it) makes the kept observation
// stale: the next observe reads afresh.
func TestWaitCheckOFPortsObservingStaleAfterConcurrentSend(t *testing.T) {
	ports := []PortSpec{{Name: "p0000", OFPort: 1}}
	var c *Client
	sentAgain := make(chan error, 1)
	f := &fakeDB{answer: func(n int, ops []map[string]any) []any {
		switch {
		case n == 0: // the wait: before answering it, another transaction is sent
			go func() {
				_, err := c.transact(op{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"cur_cfg"}})
				sentAgain <- err
			}()
			for {
				c.mu.Lock()
				sent := c.sent
				c.mu.Unlock()
				if sent == 2 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			return append([]any{map[string]any{}, ofportRow("p0000", 1, "")}, observeAnswer(3)...)
		case ops[0]["table"] == "Bridge" && len(ops) == len(observeTables):
			return observeAnswer(2)
		default:
			return []any{map[string]any{"rows": []any{}}}
		}
	}}
	c = startFakeDB(t, f, 5*time.Second)
	if err := c.waitCheckOFPorts(5, "br", ports, true); err != nil {
		t.Fatal(err)
	}
	if err := <-sentAgain; err != nil {
		t.Fatal(err)
	}
	brs, err := c.Observe()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(brs["br"].Ports); got != 2 || len(f.sent()) != 3 {
		t.Errorf("%d ports, %d transactions: want the fresh read (2 ports, 3 transactions), not the kept one", got, len(f.sent()))
	}
}
