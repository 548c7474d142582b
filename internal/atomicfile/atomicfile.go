// Package atomicfile replaces a file whole: a reader (another netlab, a
// supervised process, a crash's aftermath) sees the old file or the new
// one, never half of either.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces path with b, mode 0600: a temporary file in the same
// directory (so the rename stays on one filesystem), then rename. The
// temporary file is removed if anything fails. A missing directory is an
// error wrapping fs.ErrNotExist.
func Write(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
