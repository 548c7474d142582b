package machine

import (
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// TestAdversarialSandboxExec: `netlab sandbox exec NAME -- CMD` runs a
// command with no arguments of its own (it panicked), with or without the
// "--", and passes its exit status on.
func TestAdversarialSandboxExec(t *testing.T) {
	requireRoot(t)
	before := testkit.Fingerprint()
	sb := prefix() + "exec"
	must(t, "sandbox create", netlab(t, "sandbox", "create", sb))
	t.Cleanup(func() { netlab(t, "sandbox", "rm", sb) })
	for _, c := range []struct {
		cmd  []string
		code int
		want string
	}{
		{[]string{"--", "id"}, 0, "uid=0(root)"},
		{[]string{"id"}, 0, "uid=0(root)"},
		{[]string{"--", "true"}, 0, ""},
		{[]string{"--", "false"}, 1, ""},
		{[]string{"--", "sh", "-c", "echo in $NETLAB_IN_SANDBOX; exit 7"}, 7, "in " + sb},
	} {
		r := netlab(t, append([]string{"sandbox", "exec", sb}, c.cmd...)...)
		if r.code != c.code || !strings.Contains(r.out, c.want) || strings.Contains(r.out, "panic") {
			t.Errorf("netlab sandbox exec %s %q: exit %d, want %d and %q:\n%s", sb, c.cmd, r.code, c.code, c.want, r.out)
		}
	}
	must(t, "sandbox rm", netlab(t, "sandbox", "rm", sb))
	sameMachine(t, before)
}
