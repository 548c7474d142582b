package e2e

import (
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
)

// fingerprint is testkit.Fingerprint of this test binary's host: its
// sandbox's network namespace.
func fingerprint(t *testing.T) string {
	t.Helper()
	return testkit.Fingerprint()
}

// sameHost fails the test when the host differs from the fingerprint.
func sameHost(t *testing.T, before string) {
	t.Helper()
	if after := fingerprint(t); after != before {
		t.Errorf("host changed:\n%s", diff(before, after))
	}
}

func diff(a, b string) string { return testkit.Diff(a, b) }
