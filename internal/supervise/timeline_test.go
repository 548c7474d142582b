package supervise

import (
	"testing"

	"github.com/netlab-dev/netlab/internal/service"
)

// A runner takes its lab's state root, lab and timeline from its spec's
// path, and refuses any other path: it would otherwise work on another
// store than its starter's.
func TestTimelineOfSpec(t *testing.T) {
	root, lab, name, err := TimelineOfSpec("/run/netlab/labs/x1-chaos/timelines/nemesis.json")
	if err != nil || root != "/run/netlab" || lab != "x1-chaos" || name != "nemesis" {
		t.Errorf("got %q %q %q %v", root, lab, name, err)
	}
	if root, _, _, err := TimelineOfSpec("/tmp/t/root/labs/l/timelines/t1.json"); err != nil || root != "/tmp/t/root" {
		t.Errorf("a test's root: %q %v", root, err)
	}
	for _, bad := range []string{
		"", "nemesis.json", "labs/l/timelines/t.json", "/run/netlab/labs/l/services/n/t.json",
		"/run/netlab/labs/l/timelines/t.spec", "/run/netlab/other/l/timelines/t.json", "/run/netlab/labs/l/timelines/.json",
	} {
		if _, _, _, err := TimelineOfSpec(bad); err == nil {
			t.Errorf("%q taken for a timeline's spec", bad)
		}
	}
	spec := TimelineSpec("l", "t1")
	if spec.What() != "timeline t1" || spec.Run != service.RunTimeline || spec.Restart != "on-failure" {
		t.Errorf("spec %+v (%s)", spec, spec.What())
	}
}
