package machine

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// fileCaps are the capabilities netlab doctor once advised giving the
// binary with setcap, and capEff the effective set they give: bits 12
// (CAP_NET_ADMIN), 13 (CAP_NET_RAW) and 21 (CAP_SYS_ADMIN).
const (
	fileCaps = "cap_net_admin,cap_sys_admin,cap_net_raw+ep"
	capEff   = "CapEff:\t0000000000203000"
)

// cappedCopy copies prog into a directory uid 65534 may read and gives the
// copy fileCaps. The directory must lie on a mount without nosuid: there the
// kernel ignores file capabilities, and the test would prove nothing.
func cappedCopy(t *testing.T, prog string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-setcap-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if opts := testkit.Run(t, "findmnt", "-n", "-o", "OPTIONS", "-T", dir); strings.Contains(","+strings.TrimSpace(opts)+",", ",nosuid,") {
		t.Fatalf("%s lies on a nosuid mount (%s): file capabilities would be ignored there", dir, strings.TrimSpace(opts))
	}
	copyPath := filepath.Join(dir, filepath.Base(prog))
	src, err := os.Open(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(copyPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "setcap", fileCaps, copyPath)
	if got := testkit.Run(t, "getcap", copyPath); !strings.Contains(got, "cap_net_admin,cap_net_raw,cap_sys_admin=ep") {
		t.Fatalf("getcap %s: %q", copyPath, got)
	}
	return copyPath
}

// userJournal writes root's journal of lab, less the fields drop, into a
// state root of the user's (NETLAB_ROOT) named name, and returns the root.
func userJournal(t *testing.T, u *user, name, lab string, drop []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/run/netlab/labs", lab, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	for _, k := range drop {
		delete(j, k)
	}
	if b, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(u.dir, name)
	if err := os.MkdirAll(filepath.Join(root, "labs", lab), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "labs", lab, "journal.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "chown", "-R", "65534:65534", root)
	return root
}

// TestFileCapabilities: a netlab binary given file capabilities, run by an
// ordinary user (uid 65534), acts for that user only. It neither reaches
// nor shows a lab root has up on the machine, whatever NETLAB_ROOT says;
// the user's own lab (with the very same names) comes up in their sandbox
// and works; the commands it runs have no power over the machine; doctor
// says the capabilities are shed and why, and recommends sandboxes; and the
// machine is as before.
func TestFileCapabilities(t *testing.T) {
	requireRoot(t)
	testkit.RequireRoot(t, "file capabilities", "setcap", "getcap", "findmnt", "tc")
	before := testkit.Fingerprint()
	capped := cappedCopy(t, netlabBin)
	u := soleUser(t)

	// The ground the test stands on: on this mount, through setpriv, the
	// file capabilities reach a program the user runs.
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	if st := must(t, "a capped cat as uid 65534", u.run(nil, cappedCopy(t, cat), "/proc/self/status")); !strings.Contains(st, capEff+"\n") {
		t.Fatalf("a capped program run by uid 65534 does not get %s here:\n%s", fileCaps, st)
	}

	// Root's lab on the machine, with names only this test uses.
	p := prefix()
	lab := p + "beside"
	t.Cleanup(func() { netlab(t, "down", lab) })
	must(t, "root's up on the machine", netlab(t, "up", "-q", "--prefix", p, writeLab(t, besideLab)))
	settled(t)
	withLab := testkit.Fingerprint()
	qdiscs := func() string { return testkit.Run(t, "tc", "-n", p+"a", "qdisc", "show") }
	rootQdiscs := qdiscs()
	rootLabIntact := func(t *testing.T) {
		t.Helper()
		if out := must(t, "root's check", netlab(t, "check", lab)); !strings.Contains(out, " 0 failed") {
			t.Errorf("root's lab no longer works:\n%s", out)
		}
		if st := must(t, "root's status", netlab(t, "status", lab)); !strings.Contains(st, "drift: none") {
			t.Errorf("root's lab changed:\n%s", st)
		}
		if q := qdiscs(); q != rootQdiscs {
			t.Errorf("the qdiscs of root's namespace %sa changed:\n%s", p, testkit.Diff(rootQdiscs, q))
		}
		if now := testkit.Fingerprint(); now != withLab {
			t.Errorf("the machine changed:\n%s", testkit.Diff(withLab, now))
		}
	}
	notice := "file capabilities of " + capped + " are not used for uid 65534"

	t.Run("version says nothing of the capabilities", func(t *testing.T) {
		u := u.with(t)
		if out := must(t, "capped version", u.run(nil, capped, "version")); strings.Contains(out, "capabilit") {
			t.Errorf("version:\n%s", out)
		}
	})

	t.Run("root's lab is out of the user's reach", func(t *testing.T) {
		u := u.with(t)
		// Root's journal (every user may read it) as the user's own, where
		// they may write: as it is, and without its OVS bridges, which a
		// netlab of theirs could not reach in root's Open vSwitch anyway
		// (then down goes on to the namespaces and host links).
		copied := userJournal(t, u, "copied", lab, nil)
		crafted := userJournal(t, u, "crafted", lab, []string{"ovs_bridges"})
		for _, root := range []string{"", "/run/netlab", copied, crafted} {
			var env []string
			if root != "" {
				env = []string{"NETLAB_ROOT=" + root}
			}
			if root != copied && root != crafted {
				// The user's own journal names the lab; elsewhere it must
				// not show.
				if r := u.run(env, capped, "status"); strings.Contains(r.out, p) {
					t.Errorf("status with NETLAB_ROOT=%q shows root's lab:\n%s", root, r.out)
				}
			}
			if r := u.run(env, capped, "exec", lab, "a", "--", "ip", "-br", "addr"); r.code == 0 || strings.Contains(r.out, "192.168.91.1") {
				t.Errorf("exec in root's lab with NETLAB_ROOT=%q: exit %d\n%s", root, r.code, r.out)
			}
			if r := u.run(env, capped, "impair", lab, "a/eth0", "--delay", "50ms"); r.code == 0 {
				t.Errorf("impair of root's lab with NETLAB_ROOT=%q: exit 0\n%s", root, r.out)
			}
			r := u.run(env, capped, "down", lab)
			t.Logf("down %s with NETLAB_ROOT=%q as uid 65534: exit %d\n%s", lab, root, r.code, r.out)
			rootLabIntact(t)
		}
		if p := processesOf(t, "65534"); p != "" {
			t.Errorf("processes of the user left:\n%s", p)
		}
	})

	t.Run("the user's lab comes up in their sandbox", func(t *testing.T) {
		u := u.with(t)
		// The very names of root's running lab: the user's are their own.
		r := u.run(nil, capped, "up", "--prefix", p, u.file("beside.yaml", besideLab))
		must(t, "capped up as uid 65534", r)
		if !strings.Contains(r.out, notice) || strings.Count(r.out, notice) != 1 {
			t.Errorf("up does not say once that the capabilities are not used (%q):\n%s", notice, r.out)
		}
		if out := must(t, "capped check", u.run(nil, capped, "check", lab)); !strings.Contains(out, " 0 failed") {
			t.Errorf("check of the user's lab:\n%s", out)
		}
		must(t, "ping in the user's lab", u.run(nil, capped, "exec", lab, "a", "--", "ping", "-c", "1", "-W", "2", "192.168.91.2"))
		if ls := must(t, "capped sandbox ls", u.run(nil, capped, "sandbox", "ls")); !strings.Contains(ls, "default") || !strings.Contains(ls, lab) {
			t.Errorf("the lab is not in the user's sandbox:\n%s", ls)
		}
		rootLabIntact(t)
	})

	t.Run("commands of exec have no power over the machine", func(t *testing.T) {
		u := u.with(t)
		machineUserNS, err := os.Readlink("/proc/self/ns/user")
		if err != nil {
			t.Fatal(err)
		}
		out := must(t, "capped exec", u.run(nil, capped, "exec", lab, "a", "--", "sh", "-c", "readlink /proc/self/ns/user; cat /proc/self/uid_map"))
		var lines []string // the command's, not netlab's notice
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(l, "netlab: ") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 2 || lines[0] == machineUserNS || strings.Join(strings.Fields(lines[1]), " ") != "0 65534 1" {
			t.Errorf("the command is not in the user's own user namespace (the machine's is %s, want uid map 0 65534 1):\n%s", machineUserNS, out)
		}
	})

	t.Run("doctor says the capabilities are shed", func(t *testing.T) {
		u := u.with(t)
		out := must(t, "capped doctor", u.run(nil, capped, "doctor"))
		for _, want := range []string{
			capped + " has file capabilities",
			"shed",
			"labs of this user run in their sandbox",
			"%netlab ALL=(root) ",
			"netlab can bring labs up here",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor lacks %q:\n%s", want, out)
			}
		}
		for _, wrong := range []string{"seccomp", "security module", "setcap cap_"} {
			if strings.Contains(out, wrong) {
				t.Errorf("doctor says %q:\n%s", wrong, out)
			}
		}
	})

	t.Run("down --all", func(t *testing.T) {
		u := u.with(t)
		if out := must(t, "capped down --all", u.run(nil, capped, "down", "--all")); !strings.Contains(out, "lab "+lab+": down") || !strings.Contains(out, "sandbox default: removed") {
			t.Errorf("down --all:\n%s", out)
		}
		if p := processesOf(t, "65534"); p != "" {
			t.Errorf("processes of the user left:\n%s", p)
		}
		if _, err := os.Stat(userState); !os.IsNotExist(err) {
			t.Errorf("the user's state directory %s left (%v)", userState, err)
		}
		rootLabIntact(t)
	})

	must(t, "root's down", netlab(t, "down", lab))
	sameMachine(t, before)
}
