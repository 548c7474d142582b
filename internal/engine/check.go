package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/netlab-dev/netlab/internal/check"
	"github.com/netlab-dev/netlab/internal/observe"
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
