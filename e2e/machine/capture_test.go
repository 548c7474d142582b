package machine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestRootlessCapture: an ordinary user captures the packets of their lab,
// which lives in their sandbox: netlab capture enters it as the other lab
// verbs do, and the file it writes is theirs and reads in tcpdump.
func TestRootlessCapture(t *testing.T) {
	requireRoot(t)
	testkit.RequireRoot(t, "netlab capture compiles filters with it", "tcpdump")
	before := testkit.Fingerprint()
	u := soleUser(t)
	u.mustNetlab("up", u.lab("blue-red.yaml"))
	// A directory the user may write to: the capture's file is theirs.
	mine := filepath.Join(u.dir, "captures")
	if err := os.Mkdir(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mine, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(mine, "ping.pcapng")
	argv := u.argv(nil, netlabBin, "capture", "blue-red", "blue/veth1", "host/veth0", "-w", file, "--count", "4", "icmp")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = u.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	// Ping until the capture has its four packets: it may still be
	// entering the sandbox when the first ping goes.
	deadline := time.After(20 * time.Second)
	for captured := false; !captured; {
		u.netlab("exec", "blue-red", "blue", "--", "ping", "-c", "1", "-W", "1", "10.0.0.2")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("capture as uid 65534: %v\n%s", err, stderr.String())
			}
			captured = true
		case <-deadline:
			t.Fatalf("capture as uid 65534 did not end:\n%s", stderr.String())
		case <-time.After(300 * time.Millisecond):
		}
	}
	out, err := exec.Command("tcpdump", "-n", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v\n%s", file, err, out)
	}
	req := regexp.MustCompile(`IP 10\.0\.0\.1 > 10\.0\.0\.2: ICMP echo request`)
	rep := regexp.MustCompile(`IP 10\.0\.0\.2 > 10\.0\.0\.1: ICMP echo reply`)
	if len(req.FindAllString(string(out), -1)) < 2 || len(rep.FindAllString(string(out), -1)) < 1 || strings.Contains(string(out), "Flags [") {
		t.Errorf("the user's capture, read by tcpdump:\n%s", out)
	}
	u.mustNetlab("down", "blue-red")
	if after := testkit.Fingerprint(); after != before {
		t.Errorf("host changed:\n%s", testkit.Diff(before, after))
	}
}
