package e2e

import (
	"debug/elf"
	"strings"
	"testing"
)

// staticLab has a link to ping across and a service that takes a user's
// credentials, which netlab reads from the service's view (os/user without
// cgo reads /etc/passwd; with cgo it asked the C library).
const staticLab = `name: static
namespaces:
  a:
    interfaces:
      eth0: {peer: b/eth0, addresses: [10.63.0.1/24]}
    services:
      who:
        command: [sh, -c, "echo running as $(id -un) $(id -u); exec sleep infinity"]
        user: nobody
        ready: {log: running as}
  b:
    interfaces:
      eth0: {addresses: [10.63.0.2/24]}
`

// TestStaticBuild: the binary users get (make build and install, the
// fixture's BuildNetlab) is built without cgo. The other e2e tests run a
// race-detector build, which needs cgo; this one builds netlab as make
// does, checks that it is static (no program interpreter: no dynamic
// loader, no libc), and takes a lab with a service run as a user up, through
// its paces and down with it.
func TestStaticBuild(t *testing.T) {
	requireRoot(t)
	before := fingerprint(t)
	bin := buildProgram(t, "../cmd/netlab", "netlab", "CGO_ENABLED=0")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the netlab built without cgo has a program interpreter: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the netlab built without cgo needs %v", libs)
	}
	f.Close()

	// Its programs (the service's supervisor, the view) are this netlab too.
	env := []string{"NETLAB_BIN=" + bin}
	static := func(args ...string) string {
		t.Helper()
		r := run(t, env, bin, args...)
		if r.code != 0 {
			t.Fatalf("static netlab %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
		}
		return r.out
	}
	file := writeFile(t, t.TempDir(), "static.yaml", staticLab)
	p := newPrefix(t)
	lab := p + "static"
	t.Cleanup(func() { run(t, env, bin, "down", lab) })
	static("up", "-q", "--prefix", p, file)
	if out := static("up", "--prefix", p, file); !strings.Contains(out, "up to date") {
		t.Errorf("second up acted:\n%s", out)
	}
	static("exec", lab, "a", "--", "ping", "-c", "1", "-W", "2", "10.63.0.2")
	// nobody's name and uid, from the view's /etc/passwd (the machine's).
	if logs := static("logs", lab, "a/who"); !strings.Contains(logs, "running as nobody 65534") {
		t.Errorf("the service did not run as nobody:\n%s", logs)
	}
	if out := static("status", lab); !strings.Contains(out, "drift: none") {
		t.Errorf("status:\n%s", out)
	}
	static("down", lab)
	sameHost(t, before)
}
