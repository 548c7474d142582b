package ovs

import (
	"encoding/json"
	"fmt"

	"github.com/netlab-dev/netlab/internal/state"
)

// ObserveLab reads what taking a lab down needs of the instance: every
// bridge with its owner, datapath and fail mode, and, of the bridges that
// are not the lab's, the ports with their owners (a lab's port on another
// bridge goes alone; the lab's own bridges go with all their ports, which
// are not read). Interfaces, controllers and VLAN columns are not read
// either: Observe reads them all, and at hundreds of ports the database's
// answer and its parsing were the longest wait of a down.
//
// Two transactions: the bridges, the lab's apart from the others (a
// condition on the marker); then the other bridges' ports, by UUID.
// Equivalent to `ovs-vsctl --columns=name,datapath_type,fail_mode,external_ids
// list Bridge`, then `ovs-vsctl --columns=name,external_ids list Port P...`
// for the ports of the bridges not marked with the lab.
func (c *Client) ObserveLab(lab string) (map[string]*state.Bridge, error) {
	if c.faked {
		return c.Observe()
	}
	marker := []any{"map", [][2]string{{state.OVSLabKey, lab}}}
	bridgeCols := []string{"name", "datapath_type", "fail_mode", "external_ids"}
	otherCols := []string{"name", "datapath_type", "fail_mode", "external_ids", "ports"}
	res, err := clientTransact[rawRow](c, []op{
		{"op": "select", "table": "Bridge", "where": where([3]any{"external_ids", "includes", marker}), "columns": bridgeCols},
		{"op": "select", "table": "Bridge", "where": where([3]any{"external_ids", "excludes", marker}), "columns": otherCols},
	})
	if err != nil {
		return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
	}
	bridges := map[string]*state.Bridge{}
	own, err := rawRows(res[0].Rows, bridgeCols)
	if err != nil {
		return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
	}
	for _, r := range own {
		b, err := bridgeFromRow(r)
		if err != nil {
			return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
		}
		bridges[b.Name] = b
	}
	others, err := rawRows(res[1].Rows, otherCols)
	if err != nil {
		return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
	}
	portOf := map[string]*state.Bridge{} // port UUID → its bridge
	var ops []op
	portCols := []string{"_uuid", "name", "external_ids"}
	for _, r := range others {
		b, err := bridgeFromRow(r)
		if err != nil {
			return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
		}
		bridges[b.Name] = b
		uuids, err := r.strs("ports")
		if err != nil {
			return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
		}
		for _, u := range uuids {
			portOf[u] = b
			ops = append(ops, op{"op": "select", "table": "Port", "where": where([3]any{"_uuid", "==", uuidAtom(u)}), "columns": portCols})
		}
	}
	if len(ops) == 0 {
		return bridges, nil
	}
	pres, err := clientTransact[rawRow](c, ops)
	if err != nil {
		return nil, fmt.Errorf("ovs: observe lab %s: ports: %w", lab, err)
	}
	for _, pr := range pres {
		rows, err := rawRows(pr.Rows, portCols)
		if err != nil {
			return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
		}
		for _, r := range rows { // none when the port went meanwhile
			u, err := r.str("_uuid")
			if err != nil {
				return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
			}
			name, err := r.str("name")
			if err != nil {
				return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
			}
			ids, err := r.smap("external_ids")
			if err != nil {
				return nil, fmt.Errorf("ovs: observe lab %s: %w", lab, err)
			}
			b := portOf[u]
			if b == nil || name == b.Name {
				continue // the LOCAL port
			}
			b.Ports[name] = &state.Port{Name: name, Owner: ids[state.OVSLabKey]}
		}
	}
	return bridges, nil
}

// rawTable is a select's rows as ovs-vsctl prints a table (the same cells),
// for the same readers.
func rawTable(rs []rawRow, cols []string) table {
	t := table{Headings: cols}
	for _, r := range rs {
		cells := make([]json.RawMessage, len(cols))
		for k, col := range cols {
			if cells[k] = r[col]; cells[k] == nil {
				cells[k] = json.RawMessage("null")
			}
		}
		t.Data = append(t.Data, cells)
	}
	return t
}

// rawRows is rawTable's rows.
func rawRows(rs []rawRow, cols []string) ([]row, error) {
	return rawTable(rs, cols).rows()
}
