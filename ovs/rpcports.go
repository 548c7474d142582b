package ovs

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
)

// Bridges and ports over the database protocol: what ovs-vsctl's add-br,
// add-port, set and del-port do, as one transaction each on the kept
// connection, then the same wait for ovs-vswitchd to apply it (cur_cfg).
// A program started per step cost 5-10 ms of process start each here,
// two or three per call (ovs-vsctl transaction, ovs-vsctl list to check
// the ports), and an up observed Open vSwitch again through the protocol
// anyway. A client whose programs a test fakes (WithExec) runs the
// command-line forms instead, which the unit tests check.

// namedUUID is a reference to a row inserted in the same transaction.
func namedUUID(name string) [2]string { return [2]string{"named-uuid", name} }

// ovsSet is an OVSDB set of atoms.
func ovsSet[T any](atoms ...T) []any {
	if atoms == nil {
		atoms = []T{} // JSON [], not null
	}
	return []any{"set", atoms}
}

// ovsMap is an OVSDB map of strings.
func ovsMap(kv ...string) []any {
	pairs := [][2]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, [2]string{kv[i], kv[i+1]})
	}
	return []any{"map", pairs}
}

// bumpCfg are the operations that ask ovs-vswitchd to apply the
// transaction and read back the number to wait for (as ovs-vsctl does):
// the last result of the transaction holds it.
func bumpCfg() []op {
	return []op{
		{"op": "mutate", "table": "Open_vSwitch", "where": where(), "mutations": [][3]any{{"next_cfg", "+=", 1}}},
		{"op": "select", "table": "Open_vSwitch", "where": where(), "columns": []string{"next_cfg"}},
	}
}

// commit runs a transaction that ends with bumpCfg and waits until
// ovs-vswitchd has applied it, allowing extra for its work
// (waitConfigured).
func (c *Client) commit(ops []op, extra time.Duration) error {
	next, err := c.startCommit(ops)
	if err != nil {
		return err
	}
	return c.waitConfigured(next, extra)
}

// startCommit runs a transaction that ends with bumpCfg and returns the
// configuration to wait for (waitConfigured) before ovs-vswitchd has it.
func (c *Client) startCommit(ops []op) (next int64, err error) {
	res, err := c.transact(append(ops, bumpCfg()...)...)
	if err != nil {
		return 0, err
	}
	return nextCfg(res[len(res)-1])
}

// ownerGuard is a wait operation that holds only while the bridge row is
// still the lab's: a bridge that changed hands after it was read fails the
// transaction, and nothing of it is committed.
func ownerGuard(uuid, name, lab string) op {
	return ownerGuardWhere(byUUID(uuid), name, lab)
}

// ownerGuardWhere is ownerGuard for the bridge row that sel selects (by
// its id, or by its name, which is unique, before the id is known).
func ownerGuardWhere(sel [3]any, name, lab string) op {
	return op{"op": "wait", "table": "Bridge", "timeout": 0, "until": "==", "columns": []string{"name"},
		"where": where(sel, [3]any{"external_ids", "includes", ovsMap(state.OVSLabKey, lab)}),
		"rows":  []map[string]string{{"name": name}}}
}

func byUUID(uuid string) [3]any { return [3]any{"_uuid", "==", uuidAtom(uuid)} }
func byName(name string) [3]any { return [3]any{"name", "==", name} }

// bridgeRow reads one bridge's row, its row id and how many ports it has
// (not the ports themselves); nil if there is none.
func (c *Client) bridgeRow(name string) (b *state.Bridge, uuid string, ports int, err error) {
	res, err := c.transact(op{"op": "select", "table": "Bridge", "where": where([3]any{"name", "==", name}),
		"columns": []string{"_uuid", "name", "datapath_type", "fail_mode", "external_ids", "ports"}})
	if err != nil {
		return nil, "", 0, err
	}
	if len(res[0].Rows) == 0 {
		return nil, "", 0, nil
	}
	r := res[0].Rows[0]
	uuid, owner, err := uuidAndOwner(r)
	if err != nil {
		return nil, "", 0, err
	}
	if ports, err = setSize(r["ports"]); err != nil {
		return nil, "", 0, fmt.Errorf("bridge %s: ports: %w", name, err)
	}
	b = &state.Bridge{Name: name, Type: "ovs", Owner: owner}
	b.Datapath, _ = r["datapath_type"].(string)
	if fm, ok := r["fail_mode"].(string); ok {
		b.FailMode = fm
	}
	return b, uuid, ports, nil
}

// ensureBridgeRPC is EnsureBridge over the protocol. A new bridge is
// inserted with its internal port and interface, as add-br makes it: the
// bridge name is unique in the database, so one made by someone else
// meanwhile fails the insert instead of being claimed.
func (c *Client) ensureBridgeRPC(b BridgeSpec, dp string) error {
	cur, uuid, ports, err := c.bridgeRow(b.Name)
	if err != nil {
		return err
	}
	if cur != nil && cur.Owner != b.Lab {
		return notOwned("bridge", b.Name, cur.Owner, b.Lab)
	}
	protos := ovsSet("OpenFlow10", "OpenFlow13", "OpenFlow14")
	var ops []op
	var extra time.Duration // ovs-vswitchd's work: a new datapath opens every port again
	if cur == nil {
		row := op{"name": b.Name, "ports": namedUUID("port"), "datapath_type": dp,
			"external_ids": ovsMap(state.OVSLabKey, b.Lab), "protocols": protos}
		if b.FailMode != "" {
			row["fail_mode"] = b.FailMode
		}
		ops = []op{
			{"op": "insert", "table": "Interface", "uuid-name": "iface", "row": op{"name": b.Name, "type": "internal"}},
			{"op": "insert", "table": "Port", "uuid-name": "port", "row": op{"name": b.Name, "interfaces": namedUUID("iface")}},
			{"op": "insert", "table": "Bridge", "uuid-name": "bridge", "row": row},
			{"op": "mutate", "table": "Open_vSwitch", "where": where(), "mutations": [][3]any{{"bridges", "insert", ovsSet(namedUUID("bridge"))}}},
			{"op": "comment", "comment": "netlab: add-br " + b.Name},
		}
	} else {
		row := op{"protocols": protos}
		if curDatapath(cur) != dp {
			row["datapath_type"] = dp
			extra = waitForPorts(ports)
		}
		if b.FailMode != "" && curFailMode(cur) != b.FailMode {
			row["fail_mode"] = b.FailMode
		}
		ops = []op{
			ownerGuard(uuid, b.Name, b.Lab),
			{"op": "update", "table": "Bridge", "where": where([3]any{"_uuid", "==", uuidAtom(uuid)}), "row": row},
		}
	}
	return c.commit(ops, extra)
}

// ensurePortsRPC is EnsurePorts' change over the protocol, ports already
// checked against br (its row id uuid): each missing port inserted with its interface and
// attached, each present one (on this bridge, the lab's) given its number,
// type and marker again; all in one transaction, which fails whole if a
// port of that name appears meanwhile (port names are unique). It returns
// the configuration that has them, for waitConfigured.
func (c *Client) ensurePortsRPC(bridge, uuid string, br *state.Bridge, ports []PortSpec) (next int64, err error) {
	return c.startCommit(c.portsOps(bridge, byUUID(uuid), br.Owner, br.Ports, ports))
}

// insertPortsRPC adds ports that are all new to the lab's bridge in one
// round trip, nothing read first: the transaction's guard holds only if
// the bridge is there and the lab's, and the inserts fail it whole if a
// port or interface of one of those names exists anywhere (the names are
// unique in the database). An up's ports are new nearly always (its plan
// just saw them missing); when the transaction fails, the caller reads
// and ensures (ensurePortsRPC), which also says why.
func (c *Client) insertPortsRPC(bridge, lab string, ports []PortSpec) (next int64, err error) {
	return c.startCommit(c.portsOps(bridge, byName(bridge), lab, nil, ports))
}

// portsOps are the operations of ensurePortsRPC and insertPortsRPC, the
// bridge's row selected by sel and owned by lab, present the ports it has.
func (c *Client) portsOps(bridge string, sel [3]any, lab string, present map[string]*state.Port, ports []PortSpec) []op {
	ops := []op{ownerGuardWhere(sel, bridge, lab)}
	var added []any
	for i, p := range ports {
		iface := op{}
		if p.OFPort > 0 {
			iface["ofport_request"] = p.OFPort
		}
		switch {
		case isAFXDP(p.Type):
			iface["type"] = p.Type
		case p.Type == PortTypeSystem || p.Type == PortTypeInternal:
			iface["type"] = p.Type
		}
		if _, ok := present[p.Name]; ok {
			if p.VLAN != nil {
				ops = append(ops, op{"op": "update", "table": "Port", "where": where([3]any{"name", "==", p.Name}), "row": vlanRow(op{}, p.VLAN)})
			}
			ops = append(ops, op{"op": "update", "table": "Interface", "where": where([3]any{"name", "==", p.Name}), "row": iface},
				op{"op": "mutate", "table": "Port", "where": where([3]any{"name", "==", p.Name}),
					"mutations": [][3]any{{"external_ids", "delete", ovsSet(state.OVSLabKey)}, {"external_ids", "insert", ovsMap(state.OVSLabKey, p.Lab)}}})
			if isAFXDP(p.Type) {
				ops = append(ops, op{"op": "mutate", "table": "Interface", "where": where([3]any{"name", "==", p.Name}),
					"mutations": [][3]any{{"options", "delete", ovsSet("xdp-mode")}, {"options", "insert", ovsMap("xdp-mode", c.xdpMode)}}})
			}
			continue
		}
		iname, pname := "i"+strconv.Itoa(i), "p"+strconv.Itoa(i)
		iface["name"] = p.Name
		if isAFXDP(p.Type) {
			iface["options"] = ovsMap("xdp-mode", c.xdpMode)
		}
		ops = append(ops,
			op{"op": "insert", "table": "Interface", "uuid-name": iname, "row": iface},
			op{"op": "insert", "table": "Port", "uuid-name": pname, "row": vlanRow(op{"name": p.Name, "interfaces": namedUUID(iname),
				"external_ids": ovsMap(state.OVSLabKey, p.Lab)}, p.VLAN)})
		added = append(added, namedUUID(pname))
	}
	if len(added) > 0 {
		ops = append(ops, op{"op": "mutate", "table": "Bridge", "where": where(sel),
			"mutations": [][3]any{{"ports", "insert", []any{"set", added}}}})
	}
	return append(ops, op{"op": "comment", "comment": fmt.Sprintf("netlab: add-port %s (%d ports)", bridge, len(ports))})
}

// vlanRow adds a port's VLAN columns to row (as vlanArgs sets them); nil
// leaves row as it is.
func vlanRow(row op, v *state.PortVLAN) op {
	if v == nil {
		return row
	}
	row["vlan_mode"] = v.Mode
	row["trunks"] = ovsSet(v.Trunks...)
	if v.Tag != 0 {
		row["tag"] = v.Tag
	} else {
		row["tag"] = ovsSet[int]()
	}
	return row
}

// waitCheckOFPorts waits until ovs-vswitchd has applied next and checks
// the ports as checkOFPorts does over the protocol: each port's interface
// selected (not every interface of the database), in the wait's own
// transaction.
//
// With observe, the same transaction reads what observe reads, for the
// next observe (keepObserved): a caller that looks at the whole switch
// once ovs-vswitchd has applied the change (up's check that it converged)
// gets the answer with the wait's, instead of asking again, behind
// ovs-vswitchd's own updates of the rows it has just applied.
func (c *Client) waitCheckOFPorts(next int64, bridge string, ports []PortSpec, observe bool) error {
	then := ofportSelects(ports)
	if observe {
		then = append(then, observeOps()...)
	}
	raw, seq, err := waitConfiguredThenAs[rawRow](c, next, waitAllowance(ports), then)
	if err != nil {
		return fmt.Errorf("ovs: ports of %s: %w", bridge, err)
	}
	if observe {
		c.keepObserved(raw[len(ports):], seq)
	}
	return checkOFPortRows(bridge, ports, raw[:len(ports)])
}

// ofportSelects reads each port's interface: name, ofport, error.
func ofportSelects(ports []PortSpec) []op {
	ops := make([]op, 0, len(ports))
	for _, p := range ports {
		ops = append(ops, op{"op": "select", "table": "Interface", "where": where([3]any{"name", "==", p.Name}), "columns": []string{"name", "ofport", "error"}})
	}
	return ops
}

// checkOFPortRows turns the results of ofportSelects into the ports'
// errors: no ofport (with Interface:error), or not the one requested.
func checkOFPortRows(bridge string, ports []PortSpec, res []opResultOf[rawRow]) error {
	rows := map[string]row{}
	for _, rs := range res {
		got, err := rawRows(rs.Rows, []string{"name", "ofport", "error"})
		if err != nil {
			return fmt.Errorf("ovs: ports of %s: %w", bridge, err)
		}
		for _, r := range got {
			if name, err := r.str("name"); err == nil {
				rows[name] = r
			}
		}
	}
	// In the ports' order, as ovs-vsctl list answers the names it is given.
	var errs []error
	for _, p := range ports {
		r, ok := rows[p.Name]
		if !ok {
			continue
		}
		ofport, isNum, _ := r.int("ofport")
		msg, _ := r.str("error")
		switch {
		case !isNum || ofport < 0:
			if msg == "" {
				msg = "no ofport assigned"
			}
			errs = append(errs, &PortError{Bridge: bridge, Port: p.Name, Reason: msg})
		case p.OFPort > 0 && ofport != p.OFPort:
			errs = append(errs, fmt.Errorf("ovs: add port %s to %s: got ofport %d, requested %d (number taken?)", p.Name, bridge, ofport, p.OFPort))
		}
	}
	return errors.Join(errs...)
}

// setFailModeRPC sets fail_mode if it differs, in one transaction.
func (c *Client) setFailModeRPC(bridge, mode string) error {
	cur, uuid, _, err := c.bridgeRow(bridge)
	if err != nil {
		return err
	}
	if cur == nil {
		return fmt.Errorf("no bridge named %s", bridge)
	}
	if curFailMode(cur) == mode {
		return nil
	}
	return c.commit([]op{{"op": "update", "table": "Bridge", "where": where([3]any{"_uuid", "==", uuidAtom(uuid)}), "row": op{"fail_mode": mode}}}, 0)
}

// setOFPortRPC sets an interface's ofport_request.
func (c *Client) setOFPortRPC(port string, ofport int) error {
	res, err := c.transact(append([]op{{"op": "update", "table": "Interface", "where": where([3]any{"name", "==", port}),
		"row": op{"ofport_request": ofport}}}, bumpCfg()...)...)
	if err != nil {
		return err
	}
	if res[0].Count == nil || *res[0].Count == 0 {
		return fmt.Errorf("no row %q in table Interface", port)
	}
	next, err := nextCfg(res[len(res)-1])
	if err != nil {
		return err
	}
	return c.waitConfigured(next, waitForPorts(1))
}

// deletePortsRPC detaches the ports from the bridge (those of other
// bridges are an error, absent ones fine), in one transaction: the ports'
// rows go from the bridge's set, and the database drops them with their
// interfaces.
func (c *Client) deletePortsRPC(bridge string, names []string) error {
	s, err := c.observe()
	if err != nil {
		return err
	}
	br := s.bridges[bridge]
	if br == nil {
		return nil
	}
	res, err := c.transact(op{"op": "select", "table": "Port", "where": where(), "columns": []string{"_uuid", "name"}})
	if err != nil {
		return err
	}
	ids := map[string]string{}
	for _, r := range res[0].Rows {
		name, _ := r["name"].(string)
		if u, ok := r["_uuid"].([]any); ok && len(u) == 2 {
			ids[name], _ = u[1].(string)
		}
	}
	var gone []any
	for _, n := range names {
		if on, ok := s.portBridge[n]; ok && on != bridge {
			return fmt.Errorf("port %s is on bridge %s, not %s", n, on, bridge)
		}
		if _, ok := br.Ports[n]; ok && ids[n] != "" {
			gone = append(gone, uuidAtom(ids[n]))
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return c.commit([]op{{"op": "mutate", "table": "Bridge", "where": where([3]any{"name", "==", bridge}),
		"mutations": [][3]any{{"ports", "delete", []any{"set", gone}}}}}, waitForPorts(len(gone)))
}

// startSetPortTypes changes the interfaces' types in one transaction and
// returns the configuration that has them, for waitConfigured.
func (c *Client) startSetPortTypes(ports []PortSpec) (next int64, err error) {
	var ops []op
	for _, p := range ports {
		w := where([3]any{"name", "==", p.Name})
		if isAFXDP(p.Type) {
			ops = append(ops, op{"op": "update", "table": "Interface", "where": w, "row": op{"type": p.Type}},
				op{"op": "mutate", "table": "Interface", "where": w,
					"mutations": [][3]any{{"options", "delete", ovsSet("xdp-mode")}, {"options", "insert", ovsMap("xdp-mode", c.xdpMode)}}})
			continue
		}
		ops = append(ops, op{"op": "update", "table": "Interface", "where": w, "row": op{"type": PortTypeSystem}})
	}
	return c.startCommit(ops)
}

// observePortsRPC reads what EnsurePorts checks before it adds ports: the
// bridge (its row id and owner) and, of the named ports, those that exist,
// with their owners and the bridges they are on. Not the whole database:
// with four bridges of 250 ports each, every EnsurePorts read and parsed all
// 1,000 ports and interfaces. One transaction, and a second only for ports
// that exist, to find their bridges. The snapshot holds the bridge, its
// named ports that exist, and portBridge for those; nil if the bridge does
// not exist.
func (c *Client) observePortsRPC(bridge string, names []string) (s *snapshot, bridgeUUID string, err error) {
	ops := []op{{"op": "select", "table": "Bridge", "where": where([3]any{"name", "==", bridge}), "columns": []string{"_uuid", "external_ids"}}}
	for _, n := range names {
		ops = append(ops, op{"op": "select", "table": "Port", "where": where([3]any{"name", "==", n}), "columns": []string{"_uuid", "external_ids"}})
	}
	res, err := c.transact(ops...)
	if err != nil {
		return nil, "", err
	}
	if len(res[0].Rows) == 0 {
		return nil, "", nil
	}
	bridgeUUID, owner, err := uuidAndOwner(res[0].Rows[0])
	if err != nil {
		return nil, "", err
	}
	b := &state.Bridge{Name: bridge, Type: "ovs", Owner: owner, Ports: map[string]*state.Port{}}
	s = &snapshot{bridges: map[string]*state.Bridge{bridge: b}, portBridge: map[string]string{}}
	type found struct{ name, uuid, owner string }
	var exist []found
	for i, n := range names {
		for _, r := range res[i+1].Rows {
			u, o, err := uuidAndOwner(r)
			if err != nil {
				return nil, "", err
			}
			exist = append(exist, found{n, u, o})
		}
	}
	if len(exist) == 0 {
		return s, bridgeUUID, nil
	}
	ops = ops[:0]
	for _, p := range exist {
		ops = append(ops, op{"op": "select", "table": "Bridge", "where": where([3]any{"ports", "includes", uuidAtom(p.uuid)}), "columns": []string{"name"}})
	}
	if res, err = c.transact(ops...); err != nil {
		return nil, "", err
	}
	for i, p := range exist {
		for _, r := range res[i].Rows {
			on, _ := r["name"].(string)
			s.portBridge[p.name] = on
			if on == bridge {
				b.Ports[p.name] = &state.Port{Name: p.name, Owner: p.owner}
			}
		}
	}
	return s, bridgeUUID, nil
}
