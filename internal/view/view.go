// Package view gives a process the view a lab namespace's programs have:
// the namespace's network, its files placed over the machine's paths (a
// hosts file naming the lab's namespaces, configuration files), and its
// private writable directories. The machine's files are never written: the
// view lives in a mount namespace of the process's own, made for it and
// gone with it. The files themselves are in the lab's state directory
// (Write puts them there), so every program of one namespace sees, and may
// change, the same ones, and nobody else does.
//
// Equivalent to: `ip netns exec NS` (which also remounts /sys and binds
// /etc/netns/NS), plus `mount --bind STATE/PATH PATH` for each file and
// directory, over an overlay of the nearest existing directory where the
// machine has no such path.
package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/netlab-dev/netlab/internal/state"
)

// Manifest is what a namespace's view holds; it is written beside the files.
type Manifest struct {
	Files []FileEntry `json:"files,omitempty"`
	Dirs  []string    `json:"dirs,omitempty"`
	// Hash names the content, so a change is seen without reading it all.
	Hash string `json:"hash"`
}

// FileEntry is one placed file.
type FileEntry struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
}

// File is a file to place: its path in the view, mode and content.
type File = state.ViewFile

// manifestName is the manifest's file name in a view's root; the files are
// under root/fs/.
const manifestName = "manifest.json"

// Write puts a view's files and directories into root, replacing what
// was there (a directory that stays keeps its content: it is the programs'
// own), and writes the manifest last: a view is whole once its manifest
// says so.
func Write(root string, files []File, dirs []string) error {
	if err := os.MkdirAll(filepath.Join(root, "fs"), 0o755); err != nil {
		return fmt.Errorf("view %s: %w", root, err)
	}
	m := Manifest{Hash: state.ViewHash(files, dirs)}
	// Files no longer wanted go; directories stay (their content is the
	// programs'), unless a file now takes their place.
	if old, err := ReadManifest(root); err == nil {
		for _, f := range old.Files {
			if !slices.ContainsFunc(files, func(n File) bool { return n.Path == f.Path }) {
				os.Remove(filepath.Join(root, "fs", f.Path))
			}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(root, "fs", d)
		// Every program of the namespace may write there, as in /tmp:
		// daemons that drop to a user of their own (FRR's frr) keep their
		// sockets and pidfiles in such a directory.
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("view %s: dir %s: %w", root, d, err)
		}
		if err := os.Chmod(p, 0o777|fs.ModeSticky); err != nil {
			return fmt.Errorf("view %s: dir %s: %w", root, d, err)
		}
		m.Dirs = append(m.Dirs, d)
	}
	for _, f := range files {
		p := filepath.Join(root, "fs", f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("view %s: file %s: %w", root, f.Path, err)
		}
		tmp := p + ".netlab-new"
		if err := os.WriteFile(tmp, f.Content, f.Mode.Perm()); err != nil {
			return fmt.Errorf("view %s: file %s: %w", root, f.Path, err)
		}
		if err := os.Chmod(tmp, f.Mode.Perm()); err != nil { // past the umask
			return fmt.Errorf("view %s: file %s: %w", root, f.Path, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("view %s: file %s: %w", root, f.Path, err)
		}
		m.Files = append(m.Files, FileEntry{Path: f.Path, Mode: f.Mode})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(root, manifestName+".new")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("view %s: %w", root, err)
	}
	return os.Rename(tmp, filepath.Join(root, manifestName))
}

// ReadManifest reads a view's manifest; fs.ErrNotExist when there is none.
func ReadManifest(root string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(root, manifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("view %s: manifest: %w", root, err)
	}
	return &m, nil
}

// Spec is what Exec gives a process.
type Spec struct {
	// NetNS is the named network namespace (/run/netns/NAME) to join; ""
	// stays in this one.
	NetNS string
	// Root is the view's directory in the lab's state ("" or absent: no
	// files of the lab's).
	Root string
	// Hosts is the lab's hosts file, placed over /etc/hosts ("" or absent:
	// the machine's).
	Hosts string
	// User to run as: a name or a uid; "" keeps this process's.
	User string
	// Dir is the working directory ("" keeps this process's).
	Dir string
	// Env is the whole environment of the command; nil keeps this
	// process's.
	Env []string
	// DieWithParent kills the command when the process that started this
	// one ends (a service's supervisor), past the change of credentials,
	// which clears the kernel's parent-death signal.
	DieWithParent bool
}

// ErrNoCommand is returned for an empty command.
var ErrNoCommand = errors.New("view: no command")
