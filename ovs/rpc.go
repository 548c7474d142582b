package ovs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
)

// The database's own protocol (RFC 7047, on netlab's connection: jsonrpc.go)
// for what the command-line tools make slow: asking whether the database
// answers and which bridges it holds (one round trip on a kept connection,
// not a program started each time: about 10 ms saved per question),
// deleting a bridge, and (rpcports.go) making bridges and ports.
// ovs-vsctl del-br commits the deletion and then blocks until ovs-vswitchd
// has applied it, and ovs-vswitchd closes each port's packet socket in turn,
// each close waiting for an RCU grace period in the kernel (about 13 ms per
// port here, measured: 1.45 s for a bridge of 100 ports, 0.06 s of it on a
// CPU). Over the protocol the deletion commits in one round trip and the
// wait is a separate step, so the caller removes namespaces and links while
// ovs-vswitchd works (docs/design.md, "Down").

// rpcTimeout bounds one round trip to ovsdb-server.
const rpcTimeout = 5 * time.Second

// rpc returns the client's connection to ovsdb-server, dialled on first use.
func (c *Client) rpc() (*dbConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db, nil
	}
	sock, ok := strings.CutPrefix(c.info.DB, "unix:")
	if !ok {
		return nil, fmt.Errorf("ovs: database %s is not a unix socket", c.info.DB)
	}
	db, err := dialDB(sock)
	if err != nil {
		return nil, fmt.Errorf("ovs: connect to %s: %w", sock, err)
	}
	c.db = db
	return db, nil
}

// Close closes the client's connection to ovsdb-server, if it made one.
func (c *Client) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Close()
	c.db = nil
	return err
}

// answers reports whether the database answers an echo, dialling it first
// if need be; a connection that does not answer is dropped.
func (c *Client) answers() bool {
	db, err := c.rpc()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(c.timeout, rpcTimeout))
	defer cancel()
	if err := db.echo(ctx); err != nil {
		c.Close()
		return false
	}
	return true
}

// bridgeNames lists the names of the instance's bridges, like
// ovs-vsctl list-br.
func (c *Client) bridgeNames() ([]string, error) {
	res, err := c.transact(op{"op": "select", "table": "Bridge", "where": where(), "columns": []string{"name"}})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range res[0].Rows {
		if n, ok := r["name"].(string); ok {
			names = append(names, n)
		}
	}
	return names, nil
}

// transact runs the operations as one transaction of Open_vSwitch and
// returns each one's result; a failed operation is a *dbError (and the
// transaction committed nothing).
func (c *Client) transact(ops ...op) ([]opResult, error) {
	return clientTransact[dbRow](c, ops)
}

// clientTransact is transact with the rows of selects decoded as R.
func clientTransact[R any](c *Client, ops []op) ([]opResultOf[R], error) {
	res, _, err := clientTransactSeq[R](c, ops)
	return res, err
}

// clientTransactSeq is clientTransact that also says which of the
// client's transactions it was (the count of those sent, this one
// included): ovsdb-server answers a connection's requests in order, so a
// later one is one with a greater number.
func clientTransactSeq[R any](c *Client, ops []op) ([]opResultOf[R], uint64, error) {
	db, err := c.rpc()
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	c.sent++
	seq := c.sent
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	res, err := transactAs[R](ctx, db, "Open_vSwitch", ops)
	if err != nil {
		return nil, 0, fmt.Errorf("ovs: transact: %w", err)
	}
	return res, seq, nil
}

// op is one operation of a transaction, as RFC 7047 section 5.2 spells it.
type op map[string]any

// where is a where clause; never null (RFC 7047 wants an array).
func where(conds ...[3]any) [][3]any {
	if conds == nil {
		return [][3]any{}
	}
	return conds
}

func uuidAtom(u string) [2]string { return [2]string{"uuid", u} }

type observeTable struct {
	table   string
	columns []string
}

// observeTables are the tables and columns observe reads (observeArgs).
var observeTables = []observeTable{
	{"Bridge", []string{"_uuid", "name", "datapath_type", "fail_mode", "external_ids", "ports", "controller"}},
	{"Port", []string{"_uuid", "name", "external_ids", "interfaces", "tag", "trunks", "vlan_mode"}},
	{"Interface", []string{"_uuid", "name", "ofport_request", "ofport", "type"}},
	{"Open_vSwitch", []string{"iface_types"}},
	{"Controller", []string{"_uuid", "target", "is_connected"}},
}

// observeRPC is observe in one transaction over the protocol. The cells come
// in RFC 7047's notation, which is ovs-vsctl's --format=json too, so they
// go through the same reader.
func (c *Client) observeRPC() (*snapshot, error) {
	if res := c.takeObserved(); res != nil {
		return snapshotFromResults(res)
	}
	// The cells stay as the server wrote them: decoding them into values
	// and encoding them again took most of the parse.
	res, err := clientTransact[rawRow](c, observeOps())
	if err != nil {
		return nil, err
	}
	return snapshotFromResults(res)
}

// observeOps are observe's selects: every row of observeTables.
func observeOps() []op {
	ops := make([]op, 0, len(observeTables))
	for _, t := range observeTables {
		ops = append(ops, op{"op": "select", "table": t.table, "where": where(), "columns": t.columns})
	}
	return ops
}

// keepObserved keeps the answer to observeOps that the client's
// transaction seq carried, for the next observe.
func (c *Client) keepObserved(res []opResultOf[rawRow], seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observed, c.observedAt = res, seq
}

// takeObserved returns the kept observation, once, if no transaction was
// sent after the one that made it (which may have changed the database):
// it is then what a select sent now would answer, short of other clients'
// changes meanwhile, which any observation may miss by as little.
func (c *Client) takeObserved() []opResultOf[rawRow] {
	c.mu.Lock()
	defer c.mu.Unlock()
	res := c.observed
	c.observed = nil
	if c.sent != c.observedAt {
		return nil
	}
	return res
}

// snapshotFromResults parses the answers to observeOps.
func snapshotFromResults(res []opResultOf[rawRow]) (*snapshot, error) {
	ts := make([]table, len(observeTables))
	for i, t := range observeTables {
		ts[i] = rawTable(res[i].Rows, t.columns)
	}
	return snapshotFromTables(ts)
}

// StartDeleteBridge deletes the bridge if it is the lab's and returns at
// once, without waiting for ovs-vswitchd: wait blocks, bounded by the
// client's timeout, until ovs-vswitchd has applied the deletion and the
// bridge's interface is gone. Nil wait and error when the bridge does not
// exist; ErrNotOwned when it is not the lab's. The ownership check is part of
// the transaction (a wait operation with no timeout), so a bridge that
// changes hands between the check and the deletion is never deleted. It is
// DeleteBridge in two halves; the same as
//
//	ovs-vsctl --no-wait --if-exists del-br NAME   # then, later, wait for cur_cfg
func (c *Client) StartDeleteBridge(name, lab string) (wait func() error, err error) {
	res, err := c.transact(op{"op": "select", "table": "Bridge",
		"where": where([3]any{"name", "==", name}), "columns": []string{"_uuid", "external_ids", "ports"}})
	if err != nil {
		return nil, fmt.Errorf("ovs: delete bridge %s: %w", name, err)
	}
	rows := res[0].Rows
	if len(rows) == 0 {
		return nil, nil
	}
	uuid, owner, err := uuidAndOwner(rows[0])
	if err != nil {
		return nil, fmt.Errorf("ovs: delete bridge %s: %w", name, err)
	}
	if owner != lab {
		return nil, fmt.Errorf("ovs: delete bridge %s: %w", name, notOwned("bridge", name, owner, lab))
	}
	ports, err := setSize(rows[0]["ports"])
	if err != nil {
		return nil, fmt.Errorf("ovs: delete bridge %s: ports: %w", name, err)
	}
	wait, _, err = c.startDeleteBridges(lab, []bridgeRef{{uuid: uuid, name: name, ports: ports}})
	if err != nil {
		return nil, fmt.Errorf("ovs: delete bridge %s: %w", name, err)
	}
	return wait, nil
}

// bridgeRef is a bridge's row id and name, and how many ports it has (the
// work of its deletion for ovs-vswitchd).
type bridgeRef struct {
	uuid, name string
	ports      int
}

// startDeleteBridges commits the deletion of bridges read as the lab's in
// one transaction that re-checks each (ownerGuard: one that changed hands
// meanwhile fails it, and nothing is deleted), and returns a wait, bounded by
// the client's timeout, until ovs-vswitchd has applied it and their devices
// are gone, and how many bridges the database has left, as the same
// transaction reads them.
func (c *Client) startDeleteBridges(lab string, bridges []bridgeRef) (wait func() error, left int, err error) {
	ops := make([]op, 0, len(bridges)+2)
	uuids := make([][2]string, 0, len(bridges))
	names := make([]string, 0, len(bridges))
	var removal time.Duration // ovs-vswitchd's work: the bridges' ports go
	for _, b := range bridges {
		removal += waitForPorts(b.ports)
		ops = append(ops, ownerGuard(b.uuid, b.name, lab))
		uuids = append(uuids, uuidAtom(b.uuid))
		names = append(names, b.name)
	}
	ops = append(ops,
		op{"op": "mutate", "table": "Open_vSwitch", "where": where(),
			"mutations": [][3]any{{"bridges", "delete", ovsSet(uuids...)}}},
		op{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"bridges"}},
		op{"op": "comment", "comment": "netlab: del-br " + strings.Join(names, " ")},
	)
	res, err := c.transact(append(ops, bumpCfg()...)...)
	var dbe *dbError
	if errors.As(err, &dbe) && dbe.Op >= 0 && dbe.Op < len(bridges) {
		return nil, 0, fmt.Errorf("bridge %s changed while netlab deleted it (run down again)", bridges[dbe.Op].name)
	}
	if err != nil {
		return nil, 0, err
	}
	next, err := nextCfg(res[len(res)-1])
	if err != nil {
		return nil, 0, err
	}
	if rows := res[len(bridges)+1].Rows; len(rows) == 1 {
		if left, err = setSize(rows[0]["bridges"]); err != nil {
			return nil, 0, fmt.Errorf("bridges left: %w", err)
		}
	}
	return func() error {
		if err := c.waitConfigured(next, removal); err != nil {
			return fmt.Errorf("delete %s: %w", strings.Join(names, ", "), err)
		}
		for _, name := range names {
			if err := waitInterface(name, false, c.timeout); err != nil {
				return fmt.Errorf("delete bridge %s: %w", name, err)
			}
		}
		return nil
	}, left, nil
}

// setSize is the number of atoms of a set column as transact decodes it
// (atoms reads the forms: ["set", [...]], or one atom alone).
func setSize(v any) (int, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	as, err := atoms(raw)
	return len(as), err
}

// waitConfigured waits until ovs-vswitchd has applied configuration next
// (cur_cfg reaches it), as ovs-vsctl does after each change, bounded by the
// client's timeout and extra more: the time the change's work may take
// (waitAllowance). It does not poll: a transaction's wait operation with a
// timeout makes ovsdb-server answer when cur_cfg reaches next (RFC 7047
// 5.2.6), a second at a time. Polling cur_cfg every 5 ms made ovs-vswitchd's
// removal of 250 ports 0.3 s slower (3.63-3.67 s against 3.32 s), measured.
// "Reaches", not "equals": ovs-vswitchd sets cur_cfg to the newest next_cfg
// when it reconfigures, so a wait that starts after later changes (down
// waits for its bridges at the end) must hold when cur_cfg is already past.
func (c *Client) waitConfigured(next int64, extra time.Duration) error {
	_, _, err := waitConfiguredThenAs[dbRow](c, next, extra, nil)
	return err
}

// Waits for ovs-vswitchd get this much longer than the client's timeout
// per port the change adds or removes. ovs-vswitchd applies a change in
// one go, with nothing to see of its progress meanwhile, and its time
// grows with the ports: on a machine whose RCU grace periods are slow it
// removed 1,000 system ports (four bridges deleted at once) in 13 s, and a
// down of that lab failed at the fixed 10 s bound with the bridges half
// gone. About eight times the 13 ms a system port took there, and a second
// for an AF_XDP port (30-280 ms measured: its UMEM is cleared, its XDP
// program loaded), leave room for a busy machine and still say, in
// proportion, when ovs-vswitchd is stuck.
const (
	waitPerPort      = 100 * time.Millisecond
	waitPerAFXDPPort = time.Second
)

// waitAllowance is the extra time a wait for ovs-vswitchd allows for
// opening ports (waitConfigured).
func waitAllowance(ports []PortSpec) time.Duration {
	var d time.Duration
	for _, p := range ports {
		if isAFXDP(p.Type) {
			d += waitPerAFXDPPort
		} else {
			d += waitPerPort
		}
	}
	return d
}

// waitForPorts is the extra time a wait for ovs-vswitchd allows for n
// ports whose types the caller does not know (removed, or opened again),
// at waitPerPort each.
func waitForPorts(n int) time.Duration { return time.Duration(n) * waitPerPort }

// waitConfiguredThenAs is waitConfigured followed by the operations then,
// in the same transaction as the wait that holds: their results (the rows
// of the selects decoded as R), read as ovs-vswitchd left the database when
// it had applied next, and the number of the transaction that carried them
// (clientTransactSeq). One round trip fewer than a wait and a read, to an
// ovsdb-server still busy with ovs-vswitchd's own updates (an up's ports'
// check).
func waitConfiguredThenAs[R any](c *Client, next int64, extra time.Duration, then []op) ([]opResultOf[R], uint64, error) {
	bound := c.timeout + extra
	deadline := time.Now().Add(bound)
	curCfg := op{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"cur_cfg"}}
	for {
		wait := min(time.Until(deadline), time.Second)
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		// The wait holds when no row is left with cur_cfg below next;
		// it fails with "timed out" when none did in time.
		res, seq, err := clientTransactSeq[R](c, append([]op{{"op": "wait", "table": "Open_vSwitch", "where": where([3]any{"cur_cfg", "<", next}),
			"timeout": wait.Milliseconds(), "columns": []string{"cur_cfg"}, "until": "==", "rows": []map[string]int64{}}}, then...))
		var dbe *dbError
		if err == nil {
			return res[1:], seq, nil
		}
		if !errors.As(err, &dbe) || dbe.Op != 0 {
			return nil, 0, err
		}
		// Timed out: look once more before the deadline decides.
		cfg, err := c.transact(curCfg)
		if err != nil {
			return nil, 0, err
		}
		if rows := cfg[0].Rows; len(rows) == 1 {
			if cur, ok := rows[0]["cur_cfg"].(float64); ok && int64(cur) >= next {
				if len(then) == 0 {
					return nil, 0, nil
				}
				return clientTransactSeq[R](c, then)
			}
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("ovs-vswitchd did not apply the change within %s", bound)
		}
	}
}

// uuidAndOwner reads a Bridge row's _uuid and external_ids:netlab-lab from
// the decoded JSON of a select: ["uuid", U] and ["map", [[k, v], ...]].
func uuidAndOwner(r dbRow) (uuid, owner string, err error) {
	u, ok := r["_uuid"].([]any)
	if !ok || len(u) != 2 || u[0] != "uuid" {
		return "", "", fmt.Errorf("bad _uuid %v", r["_uuid"])
	}
	if uuid, ok = u[1].(string); !ok {
		return "", "", fmt.Errorf("bad _uuid %v", r["_uuid"])
	}
	m, ok := r["external_ids"].([]any)
	if !ok || len(m) != 2 || m[0] != "map" {
		return "", "", fmt.Errorf("bad external_ids %v", r["external_ids"])
	}
	pairs, _ := m[1].([]any)
	for _, p := range pairs {
		kv, ok := p.([]any)
		if ok && len(kv) == 2 && kv[0] == state.OVSLabKey {
			owner, _ = kv[1].(string)
		}
	}
	return uuid, owner, nil
}

// nextCfg reads next_cfg from the result of a select of it.
func nextCfg(r opResult) (int64, error) {
	if len(r.Rows) != 1 {
		return 0, fmt.Errorf("next_cfg: %d rows", len(r.Rows))
	}
	n, ok := r.Rows[0]["next_cfg"].(float64)
	if !ok {
		return 0, fmt.Errorf("next_cfg is %v", r.Rows[0]["next_cfg"])
	}
	return int64(n), nil
}
