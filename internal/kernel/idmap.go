package kernel

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// idMap is a user namespace's uid or gid map (/proc/self/uid_map): lines of
// "first-inside first-outside count". A TUN/TAP's owner and group in a lab
// file are the machine's ids (a rootless user writes their own uid); the
// kernel takes and reports them in the ids of the caller's user namespace.
// In the machine's own namespace the map is the identity.
type idMap [][3]int64

// readIDMap reads /proc/self/uid_map ("uid") or gid_map ("gid").
func readIDMap(kind string) (idMap, error) {
	b, err := os.ReadFile("/proc/self/" + kind + "_map")
	if err != nil {
		return nil, err
	}
	return parseIDMap(string(b))
}

func parseIDMap(text string) (idMap, error) {
	var m idMap
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q", line)
		}
		var r [3]int64
		for i := range f {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", line, err)
			}
			r[i] = v
		}
		m = append(m, r)
	}
	return m, nil
}

// inside turns the machine's id into this namespace's; -1 (nobody) stays.
func (m idMap) inside(outside int) (int, bool) {
	if outside < 0 {
		return outside, true
	}
	for _, r := range m {
		if int64(outside) >= r[1] && int64(outside) < r[1]+r[2] {
			return int(int64(outside) - r[1] + r[0]), true
		}
	}
	return 0, false
}

// outside turns this namespace's id into the machine's; -1 (nobody), and an
// id the map does not know, stay as they are.
func (m idMap) outside(inside int) int {
	if inside < 0 {
		return inside
	}
	for _, r := range m {
		if int64(inside) >= r[0] && int64(inside) < r[0]+r[2] {
			return int(int64(inside) - r[0] + r[1])
		}
	}
	return inside
}
