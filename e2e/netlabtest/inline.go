package netlabtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/topology"
)

// upText brings up a lab from its text, named what in messages: UpString's
// and UpLab's one way (built: the text is Format's, which the test's log
// shows when it is refused, since the errors' lines point into it). The
// text is kept in a temporary file while the lab is up, where netlab reads
// it again as it does a lab's file (Status's drift, Impair).
func upText(t testing.TB, what string, text []byte, built bool, opts []Option) *Lab {
	t.Helper()
	lab, err := topology.Parse(what, text)
	if err != nil {
		if built {
			t.Logf("netlabtest: %s, as topology.Format writes it:\n%s", what, numbered(text))
		}
		t.Fatalf("netlabtest: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("netlabtest: %s: %v", what, err)
	}
	if err := topology.ReadSideFiles(lab, wd); err != nil {
		t.Fatalf("netlabtest: %v", err)
	}
	// Removed after the lab's teardown (cleanups run last-in first-out),
	// unless the lab is kept: its file then stays with it.
	dir, err := os.MkdirTemp("", "netlabtest-")
	if err != nil {
		t.Fatalf("netlabtest: %s: %v", what, err)
	}
	var l *Lab
	t.Cleanup(func() {
		if l == nil || !l.kept {
			os.RemoveAll(dir)
		}
	})
	if lab.File, err = writeInline(dir, text, lab, wd); err != nil {
		t.Fatalf("netlabtest: %s: %v", what, err)
	}
	l = up(t, lab, what, opts)
	return l
}

// numbered is a text with its lines numbered, for errors that point into
// it.
func numbered(text []byte) string {
	var b strings.Builder
	for i, line := range strings.SplitAfter(strings.TrimSuffix(string(text), "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s", i+1, line)
	}
	return b.String() + "\n"
}

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
