package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/netlab-dev/netlab/internal/check"
	"github.com/netlab-dev/netlab/internal/observe"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/supervise"
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
		return nil, notRunning(lab)
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

// LabPart is LabFile sliced to the part this machine brought up (the
// machine its journal names): the whole lab for a lab of one machine.
func (e *Engine) LabPart(lab string) (*topology.Lab, error) {
	l, err := e.LabFile(lab)
	if err != nil {
		return nil, err
	}
	j, err := e.store.Load(lab)
	if err != nil {
		return nil, err
	}
	if len(l.Machines) > 0 && j.Machine == "" {
		return nil, fmt.Errorf("lab %s: its file now spans machines, but it was brought up as a lab of one machine", lab)
	}
	part, err := topology.ForMachine(l, j.Machine)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	return part, nil
}

// Part returns the part of the lab this machine brings up: the lab itself
// when it names no machines, else machine's part, and when machine is ""
// the part of the machine whose address is on one of this machine's
// interfaces. how says how the machine was chosen ("" for a lab of one
// machine).
func Part(lab *topology.Lab, machine string) (part *topology.Lab, how string, err error) {
	if len(lab.Machines) == 0 {
		if machine != "" {
			return nil, "", fmt.Errorf("lab %s names no machines (machines:), so it has no machine %s", lab.Name, machine)
		}
		return lab, "", nil
	}
	how = "as given (--machine)"
	if machine == "" {
		addrs, err := observe.HostAddrs()
		if err != nil {
			return nil, "", err
		}
		m, err := lab.MachineWithAddress(addrs)
		if err != nil {
			return nil, "", err
		}
		machine, how = m.Name, "its address "+m.Address.String()+" is on this machine"
	}
	part, err = topology.ForMachine(lab, machine)
	return part, how, err
}

// Check runs the lab's expectations, concurrently, each with a timeout.
func (e *Engine) Check(ctx context.Context, lab *topology.Lab, timeout time.Duration) []check.Result {
	return check.Run(ctx, Probes(lab), check.Options{Timeout: timeout})
}

// Settled is what Settle saw last: the expectations' results and the
// services that were not ready, with what their probes saw.
type Settled struct {
	Results  []check.Result
	NotReady []string
	// Waited is how long it took.
	Waited time.Duration
}

// OK says whether every expectation passed and every service was ready.
func (s *Settled) OK() bool {
	for _, r := range s.Results {
		if !r.Pass {
			return false
		}
	}
	return len(s.NotReady) == 0
}

// Settle runs the lab's expectations and probes its services' readiness
// until all pass, or wait has passed (then what it saw last says what did
// not), or ctx ends: how a test waits for routing to converge instead of
// guessing a time. wait 0 looks once.
func (e *Engine) Settle(ctx context.Context, lab *topology.Lab, timeout, wait time.Duration) *Settled {
	start := time.Now()
	deadline := start.Add(wait)
	for {
		s := &Settled{Results: e.Check(ctx, lab, timeout), NotReady: e.notReady(lab)}
		s.Waited = time.Since(start)
		if s.OK() || ctx.Err() != nil || time.Now().After(deadline) {
			return s
		}
		select {
		case <-ctx.Done():
			return s
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// notReady lists the lab's services that do not run or whose probe does
// not pass now.
func (e *Engine) notReady(lab *topology.Lab) []string {
	procs := supervise.New(e.store, lab.Name, nil)
	var out []string
	for _, ns := range lab.Namespaces {
		for _, s := range ns.Services {
			spec, err := service.ReadSpec(procs.ServiceSpecPath(s.NS, s.Name))
			if err != nil {
				out = append(out, s.NS+"/"+s.Name+": not started")
				continue
			}
			if ok, why := procs.Ready(*spec, s.Ready); !ok {
				out = append(out, s.NS+"/"+s.Name+": "+why)
			}
		}
	}
	return out
}
