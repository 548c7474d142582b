package netlabtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/netlab-dev/netlab/topology"
)

// writeInline writes a lab's text as dir/lab.yaml, which topology.Load
// reads into the same lab, and returns its path. netlab reads a running
// lab's file again (status's drift, impair), and Load reads the files the
// lab places from beside its file; an inline lab's lie beside the test
// (base), so each is linked from beside the written file at the path the
// text names (a clean relative path: the parser allows no other).
func writeInline(dir string, text []byte, lab *topology.Lab, base string) (string, error) {
	for _, ns := range lab.Namespaces {
		for _, f := range ns.Files {
			if f.From == "" {
				continue
			}
			link := filepath.Join(dir, f.From)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return "", err
			}
			if err := os.Symlink(filepath.Join(base, f.From), link); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("link %s for the lab's file: %w", f.From, err)
			}
		}
	}
	path := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		return "", err
	}
	return path, nil
}
