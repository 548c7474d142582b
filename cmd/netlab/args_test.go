package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/netlab-dev/netlab/internal/capture"
)

// sandbox exec takes a command with or without arguments, after a "--" or
// not.
func TestSandboxExecArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		cmd  []string
		ok   bool
	}{
		{[]string{"x", "--", "id"}, "x", []string{"id"}, true},
		{[]string{"x", "id"}, "x", []string{"id"}, true},
		{[]string{"x", "--", "sh", "-c", "true"}, "x", []string{"sh", "-c", "true"}, true},
		{[]string{"x", "--", "--"}, "x", []string{"--"}, true},
		{[]string{"x", "--"}, "", nil, false},
		{[]string{"x"}, "", nil, false},
		{nil, "", nil, false},
	} {
		name, cmd, ok := sandboxExecArgs(c.args)
		if ok != c.ok || ok && (name != c.name || !slices.Equal(cmd, c.cmd)) {
			t.Errorf("sandboxExecArgs(%q) = %q, %q, %v; want %q, %q, %v", c.args, name, cmd, ok, c.name, c.cmd, c.ok)
		}
	}
}

// A capture's file is made 0600, whatever the umask lets through.
func TestCaptureFileMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "c.pcapng")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out}
	ifaces := []capture.Interface{{NS: "blue", Name: "veth1", Label: "blue/veth1", LinkType: capture.LinkTypeEthernet}}
	if _, err := a.captureTo(ctx, nil, ifaces, path, capture.Pcapng, "", 0, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Errorf("capture file: mode %04o, %d bytes; want 0600 and a header", fi.Mode().Perm(), fi.Size())
	}
}
