package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netlab-dev/netlab/topology"
)

// The Mahimahi traces `netlab impair --trace` set are kept in the lab's
// directory, by hash, so the lab keeps its model when the user's file goes
// or changes: an emulator started again (after it died) replays the same.

func (s *Store) tracePath(lab, sum string) string {
	return filepath.Join(s.Dir(lab), "traces", sum+".trace")
}

// SaveTrace keeps a copy of a trace for the lab.
func (s *Store) SaveTrace(lab string, t *topology.Trace) error {
	dir := filepath.Dir(s.tracePath(lab, t.Sum))
	if err := s.PrivateDir(dir); err != nil {
		return err
	}
	var b strings.Builder
	for _, ms := range t.MS {
		b.WriteString(strconv.FormatUint(uint64(ms), 10))
		b.WriteByte('\n')
	}
	tmp := s.tracePath(lab, t.Sum) + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.tracePath(lab, t.Sum))
}

// LoadTrace reads the lab's copy of the trace ref names (nil, nil when it
// has none).
func (s *Store) LoadTrace(lab string, ref topology.TraceRef) (*topology.Trace, error) {
	b, err := os.ReadFile(s.tracePath(lab, ref.Sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := topology.ParseTrace(ref.Name, b)
	if err != nil {
		return nil, err
	}
	if t.Sum != ref.Sum {
		return nil, fmt.Errorf("the lab's copy of trace %s is damaged (hash %s, want %s)", ref.Name, t.Sum, ref.Sum)
	}
	return t, nil
}
