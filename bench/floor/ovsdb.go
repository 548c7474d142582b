package main

import (
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// ovsdb is a JSON-RPC connection to ovsdb-server (RFC 7047): transact only.
type ovsdb struct {
	c   net.Conn
	dec *json.Decoder
	id  int
}

func dialOVSDB(sock string) (*ovsdb, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	return &ovsdb{c: c, dec: json.NewDecoder(c)}, nil
}

func (o *ovsdb) close() { o.c.Close() }

type op = map[string]any

// transact runs the operations as one transaction and returns each
// operation's result; an operation's error fails the call.
func (o *ovsdb) transact(ops ...op) ([]map[string]any, error) {
	o.id++
	params := []any{"Open_vSwitch"}
	for _, x := range ops {
		params = append(params, x)
	}
	req := map[string]any{"method": "transact", "params": params, "id": o.id}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	_ = o.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := o.c.Write(b); err != nil {
		return nil, err
	}
	for {
		var resp struct {
			ID     any              `json:"id"`
			Method string           `json:"method"`
			Result []map[string]any `json:"result"`
			Error  any              `json:"error"`
		}
		if err := o.dec.Decode(&resp); err != nil {
			return nil, err
		}
		if resp.Method == "echo" {
			continue
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("ovsdb: %v", resp.Error)
		}
		for _, r := range resp.Result {
			if e, ok := r["error"]; ok && e != nil {
				return resp.Result, fmt.Errorf("ovsdb: %v: %v", e, r["details"])
			}
		}
		return resp.Result, nil
	}
}

func where(conds ...[]any) []any {
	out := []any{}
	for _, c := range conds {
		out = append(out, c)
	}
	return out
}

func omap(kv ...string) []any {
	pairs := [][]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, []string{kv[i], kv[i+1]})
	}
	return []any{"map", pairs}
}

// nextCfg bumps next_cfg in the transaction and returns the operations
// that do it and read it back (the last result row).
func nextCfgOps() []op {
	return []op{
		{"op": "mutate", "table": "Open_vSwitch", "where": where(), "mutations": []any{[]any{"next_cfg", "+=", 1}}},
		{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"next_cfg"}},
	}
}

func nextCfgOf(res []map[string]any) (int64, error) {
	rows, _ := res[len(res)-1]["rows"].([]any)
	if len(rows) != 1 {
		return 0, fmt.Errorf("ovsdb: next_cfg: %v", res[len(res)-1])
	}
	n, ok := rows[0].(map[string]any)["next_cfg"].(float64)
	if !ok {
		return 0, fmt.Errorf("ovsdb: next_cfg: %v", rows[0])
	}
	return int64(n), nil
}

// waitCfg waits until ovs-vswitchd has applied configuration next (what
// ovs-vsctl waits for after a change): the server answers a wait operation
// when its condition holds.
func (o *ovsdb) waitCfg(next int64) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := o.transact(
			op{"op": "wait", "table": "Open_vSwitch", "where": where([]any{"cur_cfg", "<", next}), "timeout": 1000,
				"columns": []string{"cur_cfg"}, "until": "==", "rows": []any{}})
		if err == nil {
			return nil
		}
		if len(res) == 0 {
			return err
		}
	}
	return fmt.Errorf("ovs-vswitchd did not apply configuration %d", next)
}
