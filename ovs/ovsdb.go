package ovs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// table is one result of `ovs-vsctl --format=json list|find ...`:
// {"data":[[cell,...],...],"headings":["col",...]}.
type table struct {
	Headings []string            `json:"headings"`
	Data     [][]json.RawMessage `json:"data"`
}

// parseTables decodes the concatenated JSON documents ovs-vsctl prints for a
// multi-command invocation, one per list/find command.
func parseTables(out []byte) ([]table, error) {
	dec := json.NewDecoder(bytes.NewReader(out))
	var ts []table
	for {
		var t table
		err := dec.Decode(&t)
		if errors.Is(err, io.EOF) {
			return ts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse ovs-vsctl json: %w", err)
		}
		ts = append(ts, t)
	}
}

// row gives access to one row's cells by column name.
type row struct {
	cols  map[string]int
	cells []json.RawMessage
}

func (t table) rows() ([]row, error) {
	cols := make(map[string]int, len(t.Headings))
	for i, h := range t.Headings {
		cols[h] = i
	}
	rs := make([]row, 0, len(t.Data))
	for _, d := range t.Data {
		if len(d) != len(t.Headings) {
			return nil, fmt.Errorf("parse ovs-vsctl json: row of %d cells for %d headings", len(d), len(t.Headings))
		}
		rs = append(rs, row{cols: cols, cells: d})
	}
	return rs, nil
}

func (r row) cell(col string) (json.RawMessage, error) {
	i, ok := r.cols[col]
	if !ok {
		return nil, fmt.Errorf("parse ovs-vsctl json: no column %q", col)
	}
	return r.cells[i], nil
}

// atoms decodes an OVSDB value into its atoms: a bare atom is a one-element
// set, ["set",[...]] a set, ["uuid",U] a UUID atom (returned as U).
func atoms(raw json.RawMessage) ([]any, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	if a, ok := v.([]any); ok && len(a) == 2 {
		switch a[0] {
		case "set":
			elems, ok := a[1].([]any)
			if !ok {
				return nil, fmt.Errorf("bad set %s", raw)
			}
			out := make([]any, 0, len(elems))
			for _, e := range elems {
				x, err := atom(e)
				if err != nil {
					return nil, err
				}
				out = append(out, x)
			}
			return out, nil
		case "map":
			return nil, fmt.Errorf("map where a set was expected: %s", raw)
		}
	}
	x, err := atom(v)
	if err != nil {
		return nil, err
	}
	return []any{x}, nil
}

func atom(v any) (any, error) {
	switch x := v.(type) {
	case string, float64, bool:
		return x, nil
	case []any:
		if len(x) == 2 && (x[0] == "uuid" || x[0] == "named-uuid") {
			if s, ok := x[1].(string); ok {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("bad atom %v", v)
}

// str returns a string column ("" for an empty optional value).
func (r row) str(col string) (string, error) {
	raw, err := r.cell(col)
	if err != nil {
		return "", err
	}
	as, err := atoms(raw)
	if err != nil || len(as) == 0 {
		return "", err
	}
	s, ok := as[0].(string)
	if !ok {
		return "", fmt.Errorf("column %s: %s is not a string", col, raw)
	}
	return s, nil
}

// strs returns a set column of strings or UUIDs.
func (r row) strs(col string) ([]string, error) {
	raw, err := r.cell(col)
	if err != nil {
		return nil, err
	}
	as, err := atoms(raw)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", col, err)
	}
	out := make([]string, 0, len(as))
	for _, a := range as {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("column %s: %s is not a set of strings", col, raw)
		}
		out = append(out, s)
	}
	return out, nil
}

// int returns an integer column; ok is false for an empty optional value.
func (r row) int(col string) (n int, ok bool, err error) {
	raw, err := r.cell(col)
	if err != nil {
		return 0, false, err
	}
	as, err := atoms(raw)
	if err != nil || len(as) == 0 {
		return 0, false, err
	}
	f, isNum := as[0].(float64)
	if !isNum {
		return 0, false, fmt.Errorf("column %s: %s is not an integer", col, raw)
	}
	return int(f), true, nil
}

// has says whether the row has the column.
func (r row) has(col string) bool {
	_, ok := r.cols[col]
	return ok
}

// ints returns a set column of integers.
func (r row) ints(col string) ([]int, error) {
	raw, err := r.cell(col)
	if err != nil {
		return nil, err
	}
	as, err := atoms(raw)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", col, err)
	}
	out := make([]int, 0, len(as))
	for _, a := range as {
		f, ok := a.(float64)
		if !ok {
			return nil, fmt.Errorf("column %s: %s is not a set of integers", col, raw)
		}
		out = append(out, int(f))
	}
	return out, nil
}

// boolean returns a boolean column (false for an empty optional value).
func (r row) boolean(col string) (bool, error) {
	raw, err := r.cell(col)
	if err != nil {
		return false, err
	}
	as, err := atoms(raw)
	if err != nil || len(as) == 0 {
		return false, err
	}
	b, ok := as[0].(bool)
	if !ok {
		return false, fmt.Errorf("column %s: %s is not a boolean", col, raw)
	}
	return b, nil
}

// smap returns a map column with string keys and values.
func (r row) smap(col string) (map[string]string, error) {
	raw, err := r.cell(col)
	if err != nil {
		return nil, err
	}
	var v []json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil || len(v) != 2 || string(v[0]) != `"map"` {
		return nil, fmt.Errorf("column %s: %s is not a map", col, raw)
	}
	var pairs [][2]string
	if err := json.Unmarshal(v[1], &pairs); err != nil {
		return nil, fmt.Errorf("column %s: %w", col, err)
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		m[p[0]] = p[1]
	}
	return m, nil
}
