package topology

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// formatCorpus is every lab file of the repository that Load accepts: the
// shipped labs (side files read) and the valid examples.
func formatCorpus(t testing.TB) []string {
	var files []string
	for _, glob := range []string{"../labs/*.yaml", "testdata/good/*.yaml", "../e2e/testdata/*.yaml", "../e2e/testdata/*/*.yaml", "../examples/*/testdata/*.yaml", "../internal/plan/testdata/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("only %d lab files", len(files))
	}
	return files
}

// Every lab file formats to a text that parses back to the same lab, whose
// format is the same text, and that the schema describes.
func TestFormatRoundTrip(t *testing.T) {
	schema := loadSchema(t)
	texts := map[string]string{"splitLab": splitLab, "emulatorLab": emulatorLab}
	for _, file := range formatCorpus(t) {
		texts[file] = ""
	}
	for name, text := range texts {
		t.Run(filepath.Base(name), func(t *testing.T) {
			var lab *Lab
			var err error
			if text != "" {
				lab, err = Parse(name, []byte(text))
			} else {
				lab, err = Load(name)
			}
			if err != nil {
				t.Fatal(err)
			}
			out := roundTrip(t, lab)
			var doc yaml.Node
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			walkSchema(t, "Format of "+name, schema, schema, doc.Content[0], "")
		})
	}
}

// roundTrip checks Parse(Format(lab)) against lab and Format of it against
// Format's first text, and returns that text.
func roundTrip(t *testing.T, lab *Lab) []byte {
	t.Helper()
	out, err := Format(lab)
	if err != nil {
		t.Fatalf("Format: %v", err)
	}
	again, err := Parse("formatted.yaml", out)
	if err != nil {
		t.Fatalf("Parse of Format's text: %v\n%s", err, numbered(out))
	}
	if len(lab.Traces) > 0 {
		// Traces stay files beside the lab (trace: names one): read as
		// Load reads them, from the lab file's directory.
		if errs := readTraces(again, filepath.Dir(lab.File)); len(errs) > 0 {
			t.Fatalf("the traces of Format's text: %v", errs)
		}
	}
	for _, d := range diffLabs(lab, again) {
		t.Errorf("after Format and Parse: %s", d)
	}
	out2, err := Format(again)
	if err != nil {
		t.Fatalf("Format of the lab parsed back: %v", err)
	}
	if !bytes.Equal(out, out2) {
		t.Errorf("Format of the lab parsed back differs:\n%s\n---\n%s", out, out2)
	}
	return out
}

func numbered(text []byte) string {
	var b strings.Builder
	for i, line := range strings.SplitAfter(string(text), "\n") {
		fmt.Fprintf(&b, "%4d  %s", i+1, line)
	}
	return b.String()
}

// A file's keys in the text Format writes: defaults left out, one peer per
// link, short mappings and lists on a line, strings that read as numbers
// or booleans quoted, a side file's text inline.
func TestFormatText(t *testing.T) {
	lab, err := Load("testdata/good/later-keys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Format(lab)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"name: later\n",
		"\n  lsw: {type: linux, machine: b}\n", // fail-mode, port-type defaults left out
		"\n      s1: {ofport: 3, impair: {rate: 1.5mbit, loss: 0.5%}}\n", // numbers other than Parse's own
		"\n      up: {addresses: [10.8.0.2/30]}\n",                       // its peer named it already
		"\n      /etc/greeting: |\n        hello from beside the lab\n",  // from:, inline
		"\n        mode: 0755\n",
		`command: [/usr/bin/app, --config, /etc/app/app.conf, "8080", "true"]`,
		`restart: "no"`,
		`net.x: "07"`,
		"\n      net.core.somaxconn: 4096\n",
		"\n    services: {db: [/usr/bin/db, -d]}\n", // the short form
		"\n  - {from: edge, to: 10.9.0.2, tcp: 22, reachable: false}\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Format's text lacks %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"fail-mode", "timeout: 30s", "on-failure", "idle-timeout", "from: side", "reachable: true"} {
		if strings.Contains(string(out), never) {
			t.Errorf("Format's text has %q, a default or a side file:\n%s", never, out)
		}
	}
}

// A lab built in Go, as a user would: only what a file would say, nothing
// derived. Check gives it what Parse derives; a mistake is reported with
// the field's path, and every mistake at once.
func TestCheckBuiltInGo(t *testing.T) {
	build := func() *Lab {
		addr := netip.MustParsePrefix
		return &Lab{
			Name:    "built",
			Bridges: []*Bridge{{Name: "br0", Addresses: []netip.Prefix{addr("10.0.0.254/24")}, OpenFlow: PresetLearningSwitch}},
			Namespaces: []*Namespace{
				{Name: "a", Interfaces: []*Interface{
					{Name: "eth0", Peer: End{Bridge: "br0", Name: "pa"}, Addresses: []netip.Prefix{addr("10.0.0.1/24")}},
					{Name: "p2p", Peer: End{NS: "b", Name: "p2p"}, Addresses: []netip.Prefix{addr("10.9.0.1/30")}, MTU: 9000},
				}, Routes: []Route{{To: addr("10.8.0.0/16"), Via: netip.MustParseAddr("10.9.0.2")}}},
				{Name: "b", Interfaces: []*Interface{
					{Name: "eth0", Peer: End{Bridge: "br0", Name: "pb"}, Addresses: []netip.Prefix{addr("10.0.0.2/24")}},
					{Name: "p2p", Addresses: []netip.Prefix{addr("10.9.0.2/30")}, MTU: 9000},
				},
					Loopback: []netip.Prefix{addr("10.8.0.1/32")},
					Files:    []File{{Path: "/etc/app.conf", Content: []byte("port 80\n"), Mode: 0o600}},
					Services: []*Service{{Name: "app", Command: []string{"app", "-c", "/etc/app.conf"}, Ready: &Ready{TCP: 80}}}},
			},
			Impairments: []*Impairment{{NS: "a", Link: "p2p", Impair: Impair{Delay: 10 * time.Millisecond}}},
			Expect:      []Expect{{From: "a", To: "b", Ping: true, Reachable: true}},
		}
	}
	lab, err := Check(build())
	if err != nil {
		t.Fatal(err)
	}
	if len(lab.Links) != 3 || lab.Host == nil || lab.Namespace("b").Interfaces[1].Peer != (End{NS: "a", Name: "p2p"}) {
		t.Errorf("links %v, host %v, b/p2p's peer: derived fields missing", lab.Links, lab.Host)
	}
	br := lab.Bridge("br0")
	if br.Type != BridgeOVS || br.FailMode != FailStandalone || len(br.Ports) != 2 || br.Ports[1].OFPort != 2 || br.LearnIdleTimeout != DefaultLearnIdleTimeout {
		t.Errorf("bridge br0 after Check: %+v", br)
	}
	s := lab.Namespace("b").Services[0]
	if s.Timeout != DefaultReadyTimeout || s.Restart != RestartOnFailure || s.NS != "b" {
		t.Errorf("service b/app after Check: %+v", s)
	}
	if len(lab.Impairments) != 1 || lab.Impairments[0].Delay != 10*time.Millisecond || lab.Expect[0].Addr != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("impairments %v, expectation %+v", lab.Impairments, lab.Expect)
	}
	roundTrip(t, lab)

	bad := build()
	bad.Namespaces[0].Interfaces[1].Peer = End{NS: "c", Name: "p2p"}
	bad.Namespaces[1].Interfaces[0].MTU = 20
	bad.Namespaces[1].Services[0].After = []Ref{{Name: "nothing"}}
	_, err = Check(bad)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Check of a lab with mistakes: %v", err)
	}
	want := []string{
		`lab built built in Go: namespaces.a.interfaces.p2p.peer: peer "c/p2p": no bridge or namespace named "c"`,
		`lab built built in Go: namespaces.b.interfaces.eth0.mtu: 20 is out of range 68..65535`,
		`lab built built in Go: namespaces.b.services.app.after[0]: no service b/nothing in the lab`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Check's errors lack\n  %s\ngot:\n%v", w, err)
		}
	}
}

// What has no place in a lab file is refused by Format itself.
func TestFormatRefuses(t *testing.T) {
	lab := func() *Lab {
		l := mustParse(t, splitLab)
		return l
	}
	prefixed := lab()
	if err := ApplyPrefix(prefixed, "t1-"); err != nil {
		t.Fatal(err)
	}
	part, err := ForMachine(lab(), "a")
	if err != nil {
		t.Fatal(err)
	}
	stray := lab()
	stray.Impairments = append(stray.Impairments, &Impairment{NS: "blue", Link: "nope", Impair: Impair{Loss: 1}})
	env := lab()
	env.Namespace("blue").Services = []*Service{{Name: "s", Command: []string{"x"}, Env: []string{"NOEQUALS"}}}
	binary := lab()
	binary.Namespace("blue").Files = []File{{Path: "/bin/x", Content: []byte{0xff, 0xfe}, Mode: 0o755}}
	for _, c := range []struct {
		lab  *Lab
		want string
	}{
		{nil, "nil lab"},
		{prefixed, `has prefix "t1-" applied`},
		{part, "machine a's part of the lab"},
		{stray, "impairment of blue/nope: the lab has no interface, bridge port or TAP of that name"},
		{env, `namespace blue: service s: env "NOEQUALS": want KEY=VALUE`},
		{binary, "namespace blue: file /bin/x: its text is not UTF-8"},
	} {
		if _, err := Format(c.lab); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Format: %v, want an error with %q", err, c.want)
		}
	}
	// A binary file read from beside the lab stays from:.
	binary.Namespace("blue").Files[0].From = "bin/x"
	if out, err := Format(binary); err != nil || !strings.Contains(string(out), "from: bin/x") {
		t.Errorf("Format of a binary side file: %v\n%s", err, out)
	}
}

// FuzzFormat: any lab Parse accepts formats, and the text parses back to
// the same lab and formats to the same text: never a panic, never a
// rejection.
func FuzzFormat(f *testing.F) {
	for _, file := range formatCorpus(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(splitLab))
	f.Add([]byte(awkwardLab))
	f.Add([]byte(emulatorLab))
	f.Fuzz(func(t *testing.T, data []byte) {
		lab, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		roundTrip(t, lab)
	})
}

// diffLabs compares two labs as a lab file says them: positions, paths and
// file names aside, and derived orders that follow the file's layout (a
// host: section written after namespaces: makes its links' ends and its
// bridge ports come in another order) compared as sets.
func diffLabs(a, b *Lab) []string {
	var out []string
	normalize(a)
	normalize(b)
	diffValues(reflect.ValueOf(a), reflect.ValueOf(b), "lab", &out)
	return out
}

func normalize(l *Lab) {
	for _, n := range l.Namespaces {
		for i := range n.Files {
			if n.Files[i].Content != nil {
				n.Files[i].From = "" // written inline
			}
		}
	}
	for _, k := range l.Links {
		if k.B.String() < k.A.String() && k.B.Bridge == "" {
			k.A, k.B = k.B, k.A
		}
	}
	slices.SortFunc(l.Links, func(x, y *Link) int { return cmp.Compare(x.A.String(), y.A.String()) })
	for _, b := range l.Bridges {
		slices.SortFunc(b.Ports, func(x, y *Port) int { return cmp.Compare(x.Name, y.Name) })
	}
	slices.SortFunc(l.Impairments, func(x, y *Impairment) int {
		return cmp.Compare(x.NS+"/"+x.Link, y.NS+"/"+y.Link)
	})
}

var (
	posType    = reflect.TypeFor[Pos]()
	bytesType  = reflect.TypeFor[[]byte]()
	stringered = map[reflect.Type]bool{
		reflect.TypeFor[netip.Addr]():       true,
		reflect.TypeFor[netip.Prefix]():     true,
		reflect.TypeFor[netip.AddrPort]():   true,
		reflect.TypeFor[net.HardwareAddr](): true,
		reflect.TypeFor[time.Duration]():    true,
	}
	ignored = map[string]bool{"File": true, "Path": true, "Key": true, "FieldPos": true}
)

func diffValues(a, b reflect.Value, path string, out *[]string) {
	t := a.Type()
	switch {
	case t == posType:
		return
	case stringered[t]:
		if x, y := fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()); x != y {
			*out = append(*out, fmt.Sprintf("%s: %s, then %s", path, x, y))
		}
		return
	case t == bytesType:
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			*out = append(*out, fmt.Sprintf("%s: %q, then %q", path, a.Bytes(), b.Bytes()))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: nil on one side", path))
			}
			return
		}
		diffValues(a.Elem(), b.Elem(), path, out)
	case reflect.Struct:
		for i := range t.NumField() {
			// Unexported fields are the lab's own indexes, not what the
			// file says.
			if f := t.Field(i); f.IsExported() && !ignored[f.Name] {
				diffValues(a.Field(i), b.Field(i), path+"."+t.Field(i).Name, out)
			}
		}
	case reflect.Slice:
		if a.Len() != b.Len() {
			*out = append(*out, fmt.Sprintf("%s: %d items, then %d", path, a.Len(), b.Len()))
			return
		}
		for i := range a.Len() {
			diffValues(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		if a.Len() != b.Len() {
			*out = append(*out, fmt.Sprintf("%s: %d entries, then %d", path, a.Len(), b.Len()))
			return
		}
		for _, k := range a.MapKeys() {
			if !b.MapIndex(k).IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: only before", path, k))
				continue
			}
			diffValues(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, k), out)
		}
	case reflect.String:
		if a.String() != b.String() {
			*out = append(*out, fmt.Sprintf("%s: %q, then %q", path, a.String(), b.String()))
		}
	case reflect.Bool:
		if a.Bool() != b.Bool() {
			*out = append(*out, fmt.Sprintf("%s: %v, then %v", path, a.Bool(), b.Bool()))
		}
	case reflect.Int, reflect.Int64:
		if a.Int() != b.Int() {
			*out = append(*out, fmt.Sprintf("%s: %d, then %d", path, a.Int(), b.Int()))
		}
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		if a.Uint() != b.Uint() {
			*out = append(*out, fmt.Sprintf("%s: %d, then %d", path, a.Uint(), b.Uint()))
		}
	case reflect.Float64:
		if a.Float() != b.Float() {
			*out = append(*out, fmt.Sprintf("%s: %v, then %v", path, a.Float(), b.Float()))
		}
	default:
		*out = append(*out, fmt.Sprintf("%s: cannot compare a %s", path, t))
	}
}

// emulatorLab has every key of what only the userspace emulator does, in
// impair: blocks and in a timeline's impair events (which change them, set
// them back to the defaults, or keep the file's).
const emulatorLab = `name: emu
bridges:
  br: {ports: {p1: {impair: {delay: 10ms, jitter: 2ms, distribution: pareto, limit: 64kb, emulator: userspace}}}}
namespaces:
  a:
    interfaces:
      e0: {peer: br/p1, impair: {gilbert-elliott: {p: 1%, r: 25%, loss-bad: 80%, loss-good: 0.5%}, trace: traces/x.trace, limit: 1500b}}
  b:
    interfaces:
      e0: {peer: host/vb, impair: {rate: 10mbit, limit: 2mb, emulator: kernel}}
timelines:
  t:
    events:
      - {at: 1s, impair: {host/p1: {distribution: uniform, emulator: auto, limit: 3000b}, a/e0: {trace: traces/y.trace}}}
      - {at: 2s, impair: {a/e0: {gilbert-elliott: {p: 2%, r: 10%}}, host/p1: {delay: 10ms, jitter: 3ms, distribution: normal, limit: 20}}}
`

// awkwardLab holds values a YAML writer must quote or escape to keep them
// what they are: strings that read as numbers, booleans, nulls or YAML
// syntax, text with leading blanks, tabs, carriage returns, trailing
// blanks, no final newline, control characters.
const awkwardLab = `name: awkward
namespaces:
  a:
    interfaces:
      e: {peer: host/awk0, addresses: ["fd00::1/64"]}
    sysctls: {net.a: "1.5", net.b: "+1", net.c: "0x1F", net.d: "-1", net.e: "null", net.f: "~", net.g: "1e3", net.h: -7, net.i: "a: b", net.j: "#x"}
    files:
      /etc/a: "  leading blanks\nline two\n"
      /etc/b: "tab\there\r\ncrlf\n"
      /etc/c: "trailing blank \nno final newline"
      /etc/d: "nul\u0000bell\u0007 é ✓ \ufeff"
      /etc/e: "\n\nstarts with empty lines\n\n\n"
      /etc/f: {content: "- dash\n? question\n", mode: 0}
      /etc/g: "null"
      "/etc/x\ny": "\nz"
    services:
      s:
        command: ["@x", "*", "&a", "!tag", "%d", "- x", "'q'", "\"dq\"", "a #b", "{x}", "[y]", "|", ">", "", "yes", "No", "0o17", ".inf", "\nline\n"]
        env: {NL: "\n\nx\n", A: "yes", B: "1e3", C: "", D: " lead", E: "x: y", F: "0x10", G: "true", H: "~"}
        user: "0700"
        ready: {log: "^\\[ok\\] \"done\" 'now'$"}
`

func TestFormatAwkwardValues(t *testing.T) {
	lab := mustParse(t, awkwardLab)
	out := roundTrip(t, lab)
	if t.Failed() {
		t.Logf("\n%s", numbered(out))
	}
}
