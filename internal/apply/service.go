package apply

import (
	"fmt"
	"os"

	"github.com/netlab-dev/netlab/internal/plan"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/view"
)

// What a lab's programs see and run: its hosts file, each namespace's view
// of files, and its services. All of it lives in the lab's directory, which
// down removes: nothing to journal.
var serviceHandlers = map[plan.Op]handler{
	plan.OpSetHosts: on(func(s *Session, a plan.SetHosts) error {
		// Rewritten in place, not replaced: a running program's /etc/hosts
		// is bound to this file, and sees the new names at once.
		path := s.store.HostsFile(s.lab)
		if err := s.store.PrivateDir(s.store.Dir(s.lab)); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("hosts file: %w", err)
		}
		if _, err := f.Write(a.Content); err != nil {
			f.Close()
			return fmt.Errorf("hosts file: %w", err)
		}
		return f.Close()
	}),
	plan.OpSetView: on(func(s *Session, a plan.SetView) error {
		if err := s.store.PrivateDir(s.store.Dir(s.lab)); err != nil {
			return err
		}
		return view.Write(s.store.ViewDir(s.lab, a.NS), a.Files, a.Dirs)
	}),
	plan.OpStartService: on(func(s *Session, a plan.StartService) error {
		spec := service.Spec{Lab: s.lab, NS: a.NS, Name: a.Name, Command: a.Program, Env: a.Env, Dir: a.Dir,
			User: a.User, Restart: a.Restart, View: s.store.ViewDir(s.lab, a.NS), Hosts: s.store.HostsFile(s.lab), Hash: a.Hash}
		if err := s.procs.StartService(spec); err != nil {
			return err
		}
		return s.procs.WaitReady(spec, a.Ready.Probe(), a.Timeout)
	}),
	plan.OpStopService: on(func(s *Session, a plan.StopService) error {
		return s.procs.StopService(a.NS, a.Name)
	}),
}
