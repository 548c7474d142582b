package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// The kinds of what a lab's programs see and run: the lab's hosts file,
// a namespace's view of files, and its services.
const (
	OpSetHosts     Op = "set-hosts"
	OpSetView      Op = "set-view"
	OpStartService Op = "start-service"
	OpStopService  Op = "stop-service"
)

// serviceKinds are their rows of the table of kinds.
var serviceKinds = map[Op]kind{
	OpSetHosts:     {},
	OpSetView:      {},
	OpStartService: {},
	OpStopService:  {down: 1},
}

// SetHosts writes the lab's hosts file, which every namespace's programs
// see as /etc/hosts: each namespace's name (as in the file) and NS-IFACE
// names with their addresses.
type SetHosts struct {
	Lines   int    `json:"lines"`
	Hash    string `json:"hash"`
	Content []byte `json:"-"`
}

func (SetHosts) Op() Op        { return OpSetHosts }
func (SetHosts) Scope() string { return "lab" }
func (SetHosts) sealed()       {}
func (s SetHosts) Command(lab string) string {
	return fmt.Sprintf("write /run/netlab/labs/%s/hosts (%d lines)   # every namespace's programs see it as /etc/hosts", lab, s.Lines)
}

// SetView writes a namespace's view: the files its programs see over the
// machine's paths, and its private directories.
type SetView struct {
	NS    string           `json:"ns,omitempty"`
	Files []state.ViewFile `json:"files,omitempty"`
	Dirs  []string         `json:"dirs,omitempty"`
	Hash  string           `json:"hash"`
}

func (SetView) Op() Op          { return OpSetView }
func (s SetView) Scope() string { return inScope(s.NS) }
func (SetView) sealed()         {}
func (s SetView) Command(lab string) string {
	var parts []string
	for _, f := range s.Files {
		parts = append(parts, fmt.Sprintf("%s (%d bytes)", f.Path, len(f.Content)))
	}
	for _, d := range s.Dirs {
		parts = append(parts, d+"/")
	}
	return fmt.Sprintf("write the view of %s under /run/netlab/labs/%s/view/%s: %s   # its programs see them in place of the machine's",
		s.NS, lab, s.NS, strings.Join(parts, ", "))
}

// StartService starts a service's supervisor in NS, and waits until the
// service is ready (its probe passes) or its timeout.
type StartService struct {
	NS      string        `json:"ns,omitempty"`
	Name    string        `json:"name"`
	Program []string      `json:"command"`
	Env     []string      `json:"env,omitempty"`
	Dir     string        `json:"dir,omitempty"`
	User    string        `json:"user,omitempty"`
	Restart string        `json:"restart"`
	Ready   *Ready        `json:"ready,omitempty"`
	Timeout time.Duration `json:"timeout"`
	// Hash is what it runs, the namespace's view included: another one
	// means a restart.
	Hash string `json:"hash"`
	// Why it is (re)started when it was running before: "it had exited
	// with status 1".
	Why string `json:"why,omitempty"`
}

// Ready is a readiness probe as a start-service carries it.
type Ready struct {
	TCP     int      `json:"tcp,omitempty"`
	UDP     int      `json:"udp,omitempty"`
	Command []string `json:"command,omitempty"`
	Log     string   `json:"log,omitempty"`
}

// Probe is the topology's form of the probe, for the supervisor.
func (r *Ready) Probe() *topology.Ready {
	if r == nil {
		return nil
	}
	return &topology.Ready{TCP: r.TCP, UDP: r.UDP, Command: r.Command, Log: r.Log}
}

func (r *Ready) String() string {
	switch {
	case r == nil:
		return "once started"
	case r.TCP != 0:
		return fmt.Sprintf("when TCP port %d listens", r.TCP)
	case r.UDP != 0:
		return fmt.Sprintf("when UDP port %d is bound", r.UDP)
	case r.Log != "":
		return fmt.Sprintf("when a line of its log matches %q", r.Log)
	}
	return "when `" + strings.Join(r.Command, " ") + "` succeeds"
}

func (StartService) Op() Op        { return OpStartService }
func (StartService) Scope() string { return "services" } // one after another: after: orders them
func (StartService) sealed()       {}
func (s StartService) Command(lab string) string {
	c := fmt.Sprintf("netlab supervise %s/%s: %s &   # ready %s, within %s", s.NS, s.Name, shellJoin(s.Program), s.Ready, s.Timeout)
	if s.Why != "" {
		c += "; " + s.Why
	}
	return c
}

// StopService ends a service's supervisor, which ends its program and all
// the program started.
type StopService struct {
	NS   string `json:"ns,omitempty"`
	Name string `json:"name"`
}

func (StopService) Op() Op          { return OpStopService }
func (s StopService) Scope() string { return inScope(s.NS) }
func (StopService) sealed()         {}
func (s StopService) Command(lab string) string {
	return fmt.Sprintf("kill $(cat /run/netlab/labs/%s/services/%s/%s.pid)   # its supervisor ends the program", lab, s.NS, s.Name)
}
func (s StopService) Removed(string) string { return "service " + s.NS + "/" + s.Name }

// shellJoin writes argv as a shell would need it typed: words with spaces,
// quotes or other special characters single-quoted.
func shellJoin(argv []string) string {
	words := make([]string, len(argv))
	for i, w := range argv {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			words[i] = w
			continue
		}
		words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}
