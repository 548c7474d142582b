package nft

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyImporter proves, with the build's own view of the imports, that
// this package is netlab's one nftables driver: no other package of the
// module (nor its tests) imports google/nftables, so every table netlab
// touches is made, read and deleted here, under one ownership rule.
func TestOnlyImporter(t *testing.T) {
	const self = "github.com/netlab-dev/netlab/internal/nft"
	out, err := exec.Command("go", "list", "-f",
		"{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}",
		"github.com/netlab-dev/netlab/...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list printed too little to be believed: %q", lines)
	}
	seen := false
	for _, l := range lines {
		fields := strings.Fields(l)
		pkg := fields[0]
		for _, imp := range fields[1:] {
			if imp != "github.com/google/nftables" && !strings.HasPrefix(imp, "github.com/google/nftables/") {
				continue
			}
			if pkg == self {
				seen = true
				continue
			}
			t.Errorf("%s imports %s: nftables work belongs in %s", pkg, imp, self)
		}
	}
	if !seen {
		t.Errorf("go list does not show %s importing google/nftables: the check itself is wrong", self)
	}
}
