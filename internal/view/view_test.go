package view

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/sandbox"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/internal/testkit"
)

// envExec makes the test binary a command run in a view: its value is the
// JSON of {spec, argv}.
const envExec = "NETLAB_VIEW_TEST_EXEC"

// TestMain runs the tests in a sandbox of their own; run again with
// envExec set, the binary is the program under test.
func TestMain(m *testing.M) {
	if v := os.Getenv(envExec); v != "" {
		var job struct {
			Spec Spec
			Argv []string
		}
		if err := json.Unmarshal([]byte(v), &job); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		err := Exec(job.Spec, job.Argv)
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(4)
	}
	os.Exit(sandbox.RunTests(m.Run, false))
}

// inView runs argv in the view and returns its output.
func inView(t *testing.T, spec Spec, argv ...string) string {
	t.Helper()
	job, _ := json.Marshal(struct {
		Spec Spec
		Argv []string
	}{spec, argv})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envExec+"="+string(job))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in the view: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// A view places files over the machine's (where it has them) and where it
// has none (over an overlay of the nearest directory), and private
// directories; its programs share them, and the machine sees none of it.
func TestView(t *testing.T) {
	testkit.RequireRoot(t, "namespaces, mounts", "sh", "cat", "ip")
	ns := testkit.Name(t, "nlv", 6)
	if err := namespace.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { namespace.Delete(ns) })
	root := filepath.Join(t.TempDir(), "view")
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("10.9.9.9 red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []File{
		{Path: "/etc/netlab-view-test/daemon.conf", Mode: 0o640, Content: []byte("hello\n")},
		{Path: "/etc/hostname", Mode: 0o644, Content: []byte("blue\n")},
	}
	if err := Write(root, files, []string{"/run/netlab-view-test"}); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(root)
	if err != nil || m.Hash != state.ViewHash(files, []string{"/run/netlab-view-test"}) {
		t.Fatalf("manifest %+v, %v", m, err)
	}
	spec := Spec{NetNS: ns, Root: root, Hosts: hosts}
	out := inView(t, spec, "sh", "-c", "cat /etc/hosts /etc/hostname /etc/netlab-view-test/daemon.conf; stat -c %a /etc/netlab-view-test/daemon.conf; echo written > /run/netlab-view-test/f; ls /sys/class/net")
	for _, want := range []string{"10.9.9.9 red", "blue", "hello", "640", "lo"} {
		if !strings.Contains(out, want) {
			t.Errorf("the view lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "eth0") {
		t.Errorf("/sys/class/net is the machine's, not the namespace's:\n%s", out)
	}
	// Another program of the view sees what the first wrote; the machine
	// does not.
	if out := inView(t, spec, "cat", "/run/netlab-view-test/f"); !strings.Contains(out, "written") {
		t.Errorf("a second program does not see the first's file: %q", out)
	}
	for _, p := range []string{"/etc/netlab-view-test", "/run/netlab-view-test"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the machine has %s", p)
		}
	}
	if b, _ := os.ReadFile("/etc/hostname"); string(b) == "blue\n" {
		t.Errorf("the machine's /etc/hostname was written")
	}
	// A user's credentials, from the view's /etc/passwd.
	if out := inView(t, Spec{NetNS: ns, User: "nobody"}, "id", "-u"); strings.TrimSpace(out) != "65534" {
		t.Errorf("as nobody: id -u says %q", out)
	}
}

func TestShallowest(t *testing.T) {
	got := shallowest([]string{"/run/a", "/run", "/etc/frr", "/etc", "/var/lib/x", "/run"})
	want := []string{"/etc", "/run", "/var/lib/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("shallowest = %q, want %q", got, want)
	}
}
