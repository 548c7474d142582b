package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/netlab-dev/netlab/internal/check"
	"github.com/netlab-dev/netlab/topology"
)

// Probes turns the lab's expectations into probes (names are the lab's, with
// its prefix already applied).
func Probes(lab *topology.Lab) []check.Probe {
	var out []check.Probe
	for i, x := range lab.Expect {
		p := check.Probe{Index: i, From: x.From, To: x.To, Addr: x.Addr, Want: x.Reachable, Kind: check.Ping}
		switch {
		case x.TCP != 0:
			p.Kind, p.Port = check.TCP, x.TCP
		case x.UDP != 0:
			p.Kind, p.Port = check.UDP, x.UDP
		}
		out = append(out, p)
	}
	return out
}

// LabFile loads the topology a running lab was brought up from, with its
// prefix, as recorded in its journal.
func (e *Engine) LabFile(lab string) (*topology.Lab, error) {
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if j.File == "" {
		return nil, fmt.Errorf("lab %s is not running (no journal)", lab)
	}
	l, err := topology.Load(j.File)
	if err == nil {
		err = topology.ApplyPrefix(l, j.Prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	if l.Name != lab {
		return nil, fmt.Errorf("lab %s: %s now describes lab %s", lab, j.File, l.Name)
	}
	return l, nil
}

// Check runs the lab's expectations, concurrently, each with a timeout.
func (e *Engine) Check(ctx context.Context, lab *topology.Lab, timeout time.Duration) []check.Result {
	return check.Run(ctx, Probes(lab), check.Options{Timeout: timeout})
}
