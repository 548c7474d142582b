package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/engine"
)

func TestCaptureHelpAndUsage(t *testing.T) {
	for _, help := range []string{"-h", "--help"} {
		var out bytes.Buffer
		if code := (&app{stdout: &out, stderr: &out}).run([]string{"capture", help}); code != exitOK || !strings.Contains(out.String(), "netlab capture") {
			t.Errorf("netlab capture %s: exit %d\n%s", help, code, out.String())
		}
	}
	for _, args := range [][]string{{"capture"}, {"capture", "lab"}, {"capture", "lab", "icmp"}, {"capture", "lab", "a/b", "--count", "-1"}, {"capture", "lab", "a/b", "--format", "txt"}, {"capture", "lab", "a/b", "tcp", "port"}, {"capture", "--no-such-flag"}} {
		var out bytes.Buffer
		if code := (&app{stdout: &out, stderr: &out}).run(args); code != exitUsage {
			t.Errorf("netlab %s: exit %d, want %d\n%s", strings.Join(args, " "), code, exitUsage, out.String())
		}
	}
}

func TestSplitCaptureArgs(t *testing.T) {
	for _, c := range []struct {
		args   []string
		specs  []string
		filter string
	}{
		{[]string{"blue/veth1"}, []string{"blue/veth1"}, ""},
		{[]string{"blue/veth1", "host/veth0", "icmp", "or", "arp"}, []string{"blue/veth1", "host/veth0"}, "icmp or arp"},
		// A filter's own slashes stay the filter's.
		{[]string{"blue/veth1", "net", "10.0.0.0/24"}, []string{"blue/veth1"}, "net 10.0.0.0/24"},
		{[]string{"blue/veth1", "--", "10.0.0.0/24"}, []string{"blue/veth1"}, "10.0.0.0/24"},
	} {
		specs, filter := splitCaptureArgs(c.args)
		if !slices.Equal(specs, c.specs) || filter != c.filter {
			t.Errorf("splitCaptureArgs(%q) = %q, %q; want %q, %q", c.args, specs, filter, c.specs, c.filter)
		}
	}
}

func TestResolveIface(t *testing.T) {
	st := &engine.LabStatus{Lab: "x-blue-red", Prefix: "x-", Namespaces: []engine.NSStatus{
		{Name: "host", Links: []engine.LinkStatus{{Name: "x-ovsbr0"}, {Name: "x-veth0"}}},
		{Name: "x-blue", Links: []engine.LinkStatus{{Name: "veth1"}}},
	}}
	for spec, want := range map[string]string{
		"blue/veth1":     "x-blue veth1 blue/veth1",
		"x-blue/veth1":   "x-blue veth1 blue/veth1",
		"host/veth0":     "host x-veth0 host/x-veth0",
		"host/x-ovsbr0":  "host x-ovsbr0 host/x-ovsbr0",
		"blue/nothere":   "no interface nothere in blue (it has: veth1)",
		"green/veth1":    "no namespace green (it has: host, x-blue)",
		"blue/":          "want NS/IFACE",
		"/veth1":         "want NS/IFACE",
		"host/veth1/bad": "no interface veth1/bad",
	} {
		i, err := resolveIface(st, spec)
		got := i.NS + " " + i.Name + " " + i.Label
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("resolveIface(%q) = %s, want %s", spec, got, want)
		}
	}
}
