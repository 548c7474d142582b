package ovs

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// observeCells is what ovsdb-server answers observe's selects with for a
// bridge of n ports of a lab, one row per map entry as rawRow holds it.
func observeCells(n int) [][]rawRow {
	uuid := func(kind string, i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`["uuid","%s%07d-0000-4000-8000-000000000000"]`, kind, i))
	}
	str := func(s string) json.RawMessage { return json.RawMessage(`"` + s + `"`) }
	empty := json.RawMessage(`["set",[]]`)
	var portUUIDs []string
	var ports, ifaces []rawRow
	for i := range n {
		name := fmt.Sprintf("p%04d", i)
		portUUIDs = append(portUUIDs, string(uuid("a", i)))
		ports = append(ports, rawRow{"_uuid": uuid("a", i), "name": str(name),
			"external_ids": json.RawMessage(`["map",[["netlab-lab","star"]]]`), "interfaces": uuid("b", i),
			"tag": empty, "trunks": empty, "vlan_mode": empty})
		ifaces = append(ifaces, rawRow{"_uuid": uuid("b", i), "name": str(name),
			"ofport_request": json.RawMessage(fmt.Sprint(i + 1)), "ofport": json.RawMessage(fmt.Sprint(i + 1)), "type": str("system")})
	}
	bridge := rawRow{"_uuid": uuid("c", 0), "name": str("br"), "datapath_type": str("netdev"), "fail_mode": empty,
		"external_ids": json.RawMessage(`["map",[["netlab-lab","star"]]]`),
		"ports":        json.RawMessage(`["set",[` + strings.Join(portUUIDs, ",") + `]]`), "controller": empty}
	return [][]rawRow{{bridge}, ports, ifaces, {{"iface_types": json.RawMessage(`["set",["system","tap","internal"]]`)}}, nil}
}

// BenchmarkObserveParse is the parse of an observation of one bridge of
// 250 ports (the benchmark's star), the answer already read.
func BenchmarkObserveParse(b *testing.B) {
	cells := observeCells(250)
	for b.Loop() {
		ts := make([]table, len(observeTables))
		for i, t := range observeTables {
			ts[i] = rawTable(cells[i], t.columns)
		}
		s, err := snapshotFromTables(ts)
		if err != nil || len(s.bridges["br"].Ports) != 250 {
			b.Fatalf("%v %+v", err, s)
		}
	}
}
