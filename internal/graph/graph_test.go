package graph

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlab-dev/netlab/internal/testkit"
	"github.com/netlab-dev/netlab/topology"
)

func load(t *testing.T, path string) *topology.Lab {
	t.Helper()
	lab, err := topology.Load(path)
	if err != nil {
		t.Fatalf("load %s:\n%v", path, err)
	}
	return lab
}

func parse(t *testing.T, name, text string) *topology.Lab {
	t.Helper()
	lab, err := topology.Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("parse %s:\n%v", name, err)
	}
	return lab
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

// mixed has what the shipped labs lack: a namespace-to-namespace veth, a
// described host interface, an undescribed host end, host routes, an
// OpenFlow bridge with names containing '-', and marks.
const mixed = `
name: mixed
host:
  interfaces:
    vh0: {peer: gw/up0, addresses: [192.168.50.1/30]}
  routes:
    - {to: 10.30.0.0/24, via: 192.168.50.2}
bridges:
  br-lan:
    type: ovs
    fail-mode: secure
    openflow: learning-switch
    addresses: [10.20.0.254/24]
namespaces:
  gw:
    interfaces:
      up0: {addresses: [192.168.50.2/30]}
      lan0: {peer: br-lan/p-gw, addresses: [10.20.0.1/24]}
      link0: {peer: edge-1/link1, addresses: [172.16.0.1/30]}
    routes:
      - {to: default, via: 192.168.50.1}
    sysctls: {net.ipv4.ip_forward: 1}
  edge-1:
    interfaces:
      link1: {addresses: [172.16.0.2/30]}
      mgmt: {peer: host/vh9}
  refl:
    interfaces:
      eth0: {peer: br-lan/p-refl, addresses: [10.20.0.2/24]}
`

var mixedMarks = Options{Marks: map[string][]string{
	"gw":      {"NAT"},
	"refl":    {"reflector tun0"},
	"unknown": {"ignored"},
}}

type goldenCase struct {
	name string
	lab  func(t *testing.T) *topology.Lab
	o    Options
}

func cases() []goldenCase {
	return []goldenCase{
		{"blue-red", func(t *testing.T) *topology.Lab { return load(t, "../../labs/blue-red.yaml") }, Options{}},
		{"blue-red-linux", func(t *testing.T) *topology.Lab { return load(t, "../../labs/blue-red-linux.yaml") }, Options{}},
		{"mixed", func(t *testing.T) *topology.Lab { return parse(t, "mixed.yaml", mixed) }, mixedMarks},
	}
}

// The pictures are golden files: reviewing their diff reviews what
// `netlab graph` shows.
func TestGolden(t *testing.T) {
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			lab := c.lab(t)
			dot := DOT(lab, c.o)
			golden(t, c.name+".dot", []byte(dot))
			golden(t, c.name+".mmd", []byte(Mermaid(lab, c.o)))
			if DOT(lab, c.o) != dot {
				t.Error("DOT is not deterministic")
			}
		})
	}
}

func TestMarksAndEdges(t *testing.T) {
	lab := parse(t, "mixed.yaml", mixed)
	dot, mmd := DOT(lab, mixedMarks), Mermaid(lab, mixedMarks)
	for _, want := range []string{"NAT", "reflector tun0", "up0 — vh0", "link0 — link1", "mgmt — vh9", "lan0 — p-gw", "eth0 — p-refl"} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %q", want)
		}
		if !strings.Contains(mmd, want) {
			t.Errorf("Mermaid lacks %q", want)
		}
	}
	if strings.Contains(dot, "ignored") || strings.Contains(mmd, "ignored") {
		t.Error("a mark for an unknown namespace was drawn")
	}
}

// No host settings and no bridges: no host in the picture.
func TestHostOnlyWhenUsed(t *testing.T) {
	lab := parse(t, "pair.yaml", `
name: pair
namespaces:
  a:
    interfaces:
      e0: {peer: b/e1, addresses: [10.9.0.1/30]}
  b:
    interfaces:
      e1: {addresses: [10.9.0.2/30]}
`)
	if dot := DOT(lab, Options{}); strings.Contains(dot, "cluster_host") || strings.Contains(dot, "host:") {
		t.Errorf("DOT draws an unused host:\n%s", dot)
	}
	if mmd := Mermaid(lab, Options{}); strings.Contains(mmd, "host") {
		t.Errorf("Mermaid draws an unused host:\n%s", mmd)
	}
}

// odd uses every character interface names may hold that DOT, HTML or
// Mermaid treat specially.
const odd = `
name: odd
bridges:
  'b"r\':
    type: linux
namespaces:
  n-1:
    interfaces:
      'q"<&>#1': {peer: 'b"r\/p\', addresses: [10.0.0.1/24]}
      "it's": {peer: end/x-1}
  end:
    interfaces:
      x-1: {}
`

func TestEscaping(t *testing.T) {
	lab := parse(t, "odd.yaml", odd)
	dot, mmd := DOT(lab, Options{}), Mermaid(lab, Options{})
	golden(t, "odd.dot", []byte(dot))
	golden(t, "odd.mmd", []byte(mmd))
	for _, s := range []string{`q&quot;&lt;&amp;&gt;#1`, `b&quot;r\`, `it&#39;s`, `"br:b%22r%5C":p0`} {
		if !strings.Contains(dot, s) {
			t.Errorf("DOT lacks %s:\n%s", s, dot)
		}
	}
	for _, s := range []string{`ns_n_2d1(`, `ns_end(`, `br_b_22r_5c{{`, `q#34;#60;#38;#62;#35;1`, `ns_n_2d1 ---|"it's — x-1"| ns_end`} {
		if !strings.Contains(mmd, s) {
			t.Errorf("Mermaid lacks %s:\n%s", s, mmd)
		}
	}
	// Every quoted Mermaid label holds no raw quote: an even number per line.
	for _, line := range strings.Split(mmd, "\n") {
		if strings.Count(line, `"`)%2 != 0 {
			t.Errorf("unbalanced quotes in Mermaid line %q", line)
		}
	}
	if _, err := exec.LookPath("dot"); err == nil {
		if _, err := Render(dot, "svg"); err != nil {
			t.Errorf("dot rejects the escaped graph: %v\n%s", err, dot)
		}
	}
}

// requireGraphviz skips without Graphviz on a developer machine, but fails
// under NETLAB_E2E=1 so CI cannot pass by skipping.
func requireGraphviz(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dot"); err != nil {
		testkit.SkipOrFail(t, fmt.Sprintf("graphviz: dot not installed (apt-get install graphviz): %v", err))
	}
}

// Graphviz lays out every golden lab, and the SVG names every namespace.
func TestRenderSVG(t *testing.T) {
	requireGraphviz(t)
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			lab := c.lab(t)
			svg, err := Render(DOT(lab, c.o), "svg")
			if err != nil {
				t.Fatal(err)
			}
			// Graphviz writes '-' in SVG text as &#45;.
			text := strings.ReplaceAll(string(svg), "&#45;", "-")
			if !strings.Contains(text, "<svg") {
				t.Fatalf("not an SVG:\n%s", svg)
			}
			for _, n := range lab.Namespaces {
				if !strings.Contains(text, ">"+n.Name+"<") {
					t.Errorf("SVG does not show namespace %s", n.Name)
				}
			}
			for _, b := range lab.Bridges {
				if !strings.Contains(text, ">"+b.Name+"<") {
					t.Errorf("SVG does not show bridge %s", b.Name)
				}
			}
			// The picture for the docs: written on -update, never compared
			// (layout and fonts vary with the Graphviz version).
			if c.name == "blue-red" && testkit.Updating() {
				golden(t, "blue-red.svg", svg)
				png, err := Render(DOT(lab, c.o), "png")
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "blue-red.png", png)
			}
		})
	}
}

func TestRenderPNG(t *testing.T) {
	requireGraphviz(t)
	png, err := Render(DOT(load(t, "../../labs/blue-red.yaml"), Options{}), "png")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("not a PNG: %q...", png[:min(len(png), 8)])
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := Render("graph {}", "pdf"); err == nil || !strings.Contains(err.Error(), `"pdf"`) {
		t.Errorf("Render pdf: %v, want an unknown-format error", err)
	}

	saved := dotCommand
	t.Cleanup(func() { dotCommand = saved })
	dotCommand = "netlab-no-such-dot"
	_, err := Render("graph {}", "svg")
	if !errors.Is(err, ErrNoGraphviz) {
		t.Fatalf("Render without dot: %v, want ErrNoGraphviz", err)
	}
	for _, s := range []string{"apt-get install graphviz", "--format dot", "mermaid"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("ErrNoGraphviz does not say %q: %v", s, err)
		}
	}
}

func TestRenderBadDOT(t *testing.T) {
	requireGraphviz(t)
	if _, err := Render("graph {", "svg"); err == nil || !strings.Contains(err.Error(), "dot -Tsvg") {
		t.Errorf("Render of broken DOT: %v, want a dot -Tsvg error", err)
	}
}
