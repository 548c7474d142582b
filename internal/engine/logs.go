package engine

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/netlab-dev/netlab/internal/namespace"
)

// ServiceLog is the log of one service of a lab.
type ServiceLog struct {
	NS, Name string
	Path     string
}

// ServiceLogs lists the logs of a lab's services whose namespace is ns (as
// in the file or on the machine; "" for all) and, if given, whose name is
// service. A lab that is not running, or nothing that matches, is an
// error that says so.
func (e *Engine) ServiceLogs(lab, ns, service string) ([]ServiceLog, error) {
	if !e.store.Exists(lab) {
		return nil, notRunning(lab)
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(e.store.Dir(lab), "services", "*", "*.log"))
	slices.Sort(files)
	var out []ServiceLog
	for _, f := range files {
		n, name := filepath.Base(filepath.Dir(f)), strings.TrimSuffix(filepath.Base(f), ".log")
		if ns != "" && n != ns && n != j.Prefix+ns || service != "" && name != service {
			continue
		}
		out = append(out, ServiceLog{NS: n, Name: name, Path: f})
	}
	if len(out) == 0 {
		what := "services"
		if ns != "" {
			what = "services in namespace " + ns
		}
		if service != "" {
			what = "service " + ns + "/" + service
		}
		return nil, fmt.Errorf("lab %s has no %s (netlab status %s lists them)", lab, what, lab)
	}
	return out, nil
}

// LabNamespace names a namespace of a running lab as on the machine, from
// ns as the file or the machine writes it: from the journal, without
// observing the lab (`netlab exec`, the fixture's commands).
func (e *Engine) LabNamespace(lab, ns string) (string, error) {
	if !e.store.Exists(lab) {
		return "", notRunning(lab)
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return "", err
	}
	for _, n := range j.Namespaces {
		if (n == ns || n == j.Prefix+ns) && namespace.Exists(n) {
			return n, nil
		}
	}
	return "", fmt.Errorf("lab %s has no namespace %s (netlab status %s lists them): %w", lab, ns, lab, ErrNoNamespace)
}
