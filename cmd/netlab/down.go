package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/netlab-dev/netlab/internal/engine"
	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/topology"
)

// down: netlab down NAME|FILE|--all. Needs no file: the journal and the
// markers on the objects say what is the lab's.
func (a *app) down(args []string) int {
	fs := a.flags("down", "NAME|FILE|--all")
	prefix := prefixFlag(fs)
	all := fs.Bool("all", false, "take down every lab on this machine")
	asJSON := fs.Bool("json", false, "print one JSON event per removed object, then a final one per lab")
	quiet := fs.Bool("q", false, "print only the result (also --quiet)")
	machine := fs.String("machine", "", "the machine whose part to take down: refused if this machine has another's")
	dryRun := fs.Bool("dry-run", false, "print what down would remove and leave alone, and change nothing (with --json: one object per lab)")
	fs.BoolVar(quiet, "quiet", false, "print only the result")
	pos, code, ok := positional(fs, args, 0, 1)
	if !ok {
		return code
	}
	if *all == (len(pos) == 1) {
		fs.Usage()
		return exitUsage
	}
	if a.sandbox != "" {
		return a.enter("down", args)
	}
	log := a.stdout
	if *quiet || *asJSON {
		log = io.Discard
	}
	var opts []engine.Option
	var events *jsonEvents
	if *asJSON {
		events = newJSONEvents(a.stdout)
		opts = append(opts, engine.WithProgress(func(ev engine.Event) { events.write(ev) }))
	}
	eng := a.engine(log, opts...)
	var labs []string
	if *all {
		var err error
		labs, err = eng.Labs()
		if err != nil {
			return a.fail("down --all", err)
		}
		if len(labs) == 0 && !*asJSON {
			fmt.Fprintln(a.stdout, "no labs running")
		}
	} else {
		name, code := a.labName(pos[0], *prefix)
		if name == "" {
			return code
		}
		labs = []string{name}
	}
	if *dryRun {
		return a.downDryRun(eng, labs, *asJSON)
	}
	code = exitOK
	for _, lab := range labs {
		if *machine != "" {
			if j, err := eng.Store().Load(lab); err == nil && eng.Store().Exists(lab) && j.Machine != *machine {
				fmt.Fprintf(a.stderr, "netlab: down %s: this machine has %s, not machine %s's part\n", lab, engine.PartText(j.Machine), *machine)
				code = exitRuntime
				continue
			}
		}
		res, err := eng.Down(lab)
		if events != nil {
			done := downDone{Event: "done", Lab: lab}
			if res != nil {
				done.DownResult = *res
			}
			if err != nil {
				done.Event, done.Error = "error", err.Error()
			}
			events.write(done)
		}
		if res != nil && events == nil {
			for _, l := range res.LeftAlone {
				fmt.Fprintf(a.stdout, "left alone: %s\n", l)
			}
		}
		if err != nil {
			code = a.fail("down "+lab, err)
			continue
		}
		if events != nil {
			continue
		}
		if res.NotRunning {
			fmt.Fprintf(a.stdout, "lab %s: not running\n", lab)
		} else {
			fmt.Fprintf(a.stdout, "lab %s: down\n", lab)
		}
	}
	return code
}

// downPlan is what `netlab down --dry-run --json` prints for each lab.
type downPlan struct {
	Lab       string    `json:"lab"`
	Actions   plan.Plan `json:"actions"`
	LeftAlone []string  `json:"left_alone"`
	Notes     []string  `json:"notes"`
}

// downDryRun prints each lab's down plan: the actions in order, what down
// leaves alone and why, and what it does besides the plan.
func (a *app) downDryRun(eng *engine.Engine, labs []string, asJSON bool) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	code := exitOK
	for _, lab := range labs {
		p, left, notes, err := eng.DownPlan(lab)
		if err != nil {
			code = a.fail("down --dry-run "+lab, err)
			continue
		}
		if asJSON {
			out := downPlan{Lab: lab, Actions: p, LeftAlone: left, Notes: notes}
			if out.Actions == nil {
				out.Actions = plan.Plan{}
			}
			if out.LeftAlone == nil {
				out.LeftAlone = []string{}
			}
			if out.Notes == nil {
				out.Notes = []string{}
			}
			if err := enc.Encode(out); err != nil {
				return a.fail("down --dry-run", err)
			}
			continue
		}
		if len(p) == 0 && len(notes) == 0 {
			fmt.Fprintf(a.stdout, "lab %s: nothing to remove\n", lab)
		} else {
			fmt.Fprintf(a.stdout, "lab %s: down would run:\n", lab)
			fmt.Fprint(a.stdout, p.String())
		}
		for _, l := range left {
			fmt.Fprintf(a.stdout, "left alone: %s\n", l)
		}
		for _, n := range notes {
			fmt.Fprintf(a.stdout, "note: %s\n", n)
		}
	}
	return code
}

// downDone is the last JSON event of `netlab down --json` for each lab.
type downDone struct {
	Event string `json:"event"` // "done" or "error"
	Lab   string `json:"lab"`
	engine.DownResult
	Error string `json:"error,omitempty"`
}

// labName turns a down/status argument into a lab name: a path to a topology
// file (anything with a slash or a .yaml/.yml ending that exists) gives the
// file's lab name; anything else is taken as the name.
// isFileArg says whether a LAB|FILE argument names a file.
func isFileArg(arg string) bool {
	return strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml")
}

func (a *app) labName(arg, prefix string) (string, int) {
	if isFileArg(arg) {
		if _, err := os.Stat(arg); err == nil {
			if name, ok := nameInFile(arg, prefix); ok {
				return name, exitOK
			}
			lab, code := a.loadLab(arg, prefix)
			if lab == nil {
				return "", code
			}
			return lab.Name, exitOK
		}
		fmt.Fprintf(a.stderr, "netlab: %s: no such file (give a lab name or a topology file)\n", arg)
		return "", exitUsage
	}
	name := prefix + arg
	if !validLabName(name) {
		fmt.Fprintf(a.stderr, "netlab: %q is not a lab name ([a-z0-9-]) nor a file\n", name)
		return "", exitUsage
	}
	return name, exitOK
}

// nameInFile reads the lab's name from a topology file without loading the
// rest (at 10,000 namespaces, loading a file costs more than the lab's
// down): the value of a `name:` line at the start of a line, which in YAML
// can only be the top-level key. Anything less plain (quotes, flow style,
// no such line, a name netlab would refuse) says !ok, and the caller loads
// the file whole, for its error.
func nameInFile(path, prefix string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "name:")
		if !ok {
			continue
		}
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		v = strings.TrimSpace(v)
		if v == "" || len(v) > topology.MaxLabName || !(v[0] >= 'a' && v[0] <= 'z') || !validLabName(prefix+v) ||
			prefix != "" && (len(prefix) > 6 || !validLabName(prefix)) {
			return "", false
		}
		return prefix + v, true
	}
	return "", false
}

// validLabName says whether s can name a lab, prefixed or not: a prefix
// starts with a letter or digit, a lab name with a letter, and neither
// with "-" (so "--all" after a "--" is no lab).
func validLabName(s string) bool {
	if s == "" || len(s) > topology.MaxPrefixedLabName || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
