package ovs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/state"
)

// LabBridgesDeleted is what StartDeleteLabBridges committed.
type LabBridgesDeleted struct {
	Names []string     // the bridges deleted, sorted
	Wait  func() error // until ovs-vswitchd has removed them; nil when none were
	// OthersLeft says that bridges not the lab's were left in the
	// database, as the deletion's own transaction read it: netlab's
	// private Open vSwitch is then not idle, with no need to look again.
	OthersLeft bool
}

// StartDeleteLabBridges commits, in one transaction, the deletion of every
// bridge that carries the lab's marker, and returns their names (sorted)
// and a wait for ovs-vswitchd to have applied it and removed their
// devices. Down runs it first, so that the lab's host links can go at once
// after it (their ports are gone from the database, as with the plan's
// del-br): ok is false, and nothing is deleted, when a port of the lab sits
// on a bridge that is not the lab's, since that port must leave its bridge
// (the plan's del-port) before its device goes. A client whose programs a
// test fakes deletes nothing (ok false): the plan does it all.
// Equivalent to: `ovs-vsctl del-br B1 -- del-br B2 ...` for the bridges
// `ovs-vsctl --columns=name find Bridge external_ids:netlab-lab=LAB` lists.
func (c *Client) StartDeleteLabBridges(lab string) (d LabBridgesDeleted, ok bool, err error) {
	if c.faked {
		return d, false, nil
	}
	fail := func(err error) (LabBridgesDeleted, bool, error) {
		return LabBridgesDeleted{}, false, fmt.Errorf("ovs: delete the bridges of lab %s: %w", lab, err)
	}
	marker := ovsMap(state.OVSLabKey, lab)
	bridgeCols := []string{"_uuid", "name", "ports"}
	res, err := clientTransact[rawRow](c, []op{
		{"op": "select", "table": "Bridge", "where": where([3]any{"external_ids", "includes", marker}), "columns": bridgeCols},
		{"op": "select", "table": "Port", "where": where([3]any{"external_ids", "includes", marker}), "columns": []string{"_uuid"}},
	})
	if err != nil {
		return fail(err)
	}
	bridges, err := rawRows(res[0].Rows, bridgeCols)
	if err != nil {
		return fail(err)
	}
	ports, err := rawRows(res[1].Rows, []string{"_uuid"})
	if err != nil {
		return fail(err)
	}
	onOwn := map[string]bool{} // the ports of the lab's bridges, by UUID
	var refs []bridgeRef
	for _, r := range bridges {
		u, err := r.str("_uuid")
		if err != nil {
			return fail(err)
		}
		name, err := r.str("name")
		if err != nil {
			return fail(err)
		}
		ps, err := r.strs("ports")
		if err != nil {
			return fail(err)
		}
		for _, p := range ps {
			onOwn[p] = true
		}
		refs = append(refs, bridgeRef{uuid: u, name: name, ports: len(ps)})
	}
	for _, r := range ports {
		u, err := r.str("_uuid")
		if err != nil {
			return fail(err)
		}
		if !onOwn[u] {
			return d, false, nil
		}
	}
	if len(refs) == 0 {
		return d, true, nil
	}
	slices.SortFunc(refs, func(a, b bridgeRef) int { return strings.Compare(a.name, b.name) })
	// A guard failed (a bridge changed hands meanwhile), or the commit:
	// nothing was deleted, and the plan says what it finds.
	wait, left, err := c.startDeleteBridges(lab, refs)
	if err != nil {
		return fail(err)
	}
	for _, b := range refs {
		d.Names = append(d.Names, b.name)
	}
	d.Wait, d.OthersLeft = wait, left > 0
	return d, true, nil
}
