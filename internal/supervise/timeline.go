package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netlab-dev/netlab/internal/proc"
	"github.com/netlab-dev/netlab/internal/service"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/topology"
)

// A timeline's runner, `netlab timeline-run SPEC`, is supervised as a
// service's program is: `netlab supervise SPEC` (a spec whose Run is
// service.RunTimeline) runs it in a process group of its own, restarts it
// when it fails, and ends it when told to stop; the runner dies with its
// supervisor. It runs in the machine's namespace (it changes the lab
// through the engine, under the lab's lock), with no view. Files, in the
// lab's directory under timelines/: NAME.json (the spec), NAME.pid (the
// supervisor: pid and start time), NAME.state (the runner now), NAME.log
// (the runner's and the supervisor's lines) and NAME.events (the event
// log, one JSON line per step).

// TimelinesDir is the directory of a lab's timeline files, under its
// directory dir.
func TimelinesDir(dir string) string { return filepath.Join(dir, "timelines") }

func (s *Supervisor) timelineBase(name string) string {
	return filepath.Join(TimelinesDir(s.store.Dir(s.lab)), name)
}

// TimelineLog is the path of a timeline's runner log.
func (s *Supervisor) TimelineLog(name string) string { return s.timelineBase(name) + ".log" }

// TimelineEvents is the path of a timeline's event log.
func (s *Supervisor) TimelineEvents(name string) string { return s.timelineBase(name) + ".events" }

// TimelineSpec is the spec a timeline's runner is supervised with.
func TimelineSpec(lab, name string) service.Spec {
	return service.Spec{Lab: lab, Name: name, Restart: topology.RestartOnFailure, Run: service.RunTimeline}
}

// TimelineOfSpec says which lab's state root, lab and timeline a runner's
// spec path names: ROOT/labs/LAB/timelines/NAME.json. The runner takes its
// state root from there, so it works on the store its starter used.
func TimelineOfSpec(path string) (root, lab, name string, err error) {
	clean := filepath.Clean(path)
	name = strings.TrimSuffix(filepath.Base(clean), ".json")
	tl := filepath.Dir(clean)
	labDir := filepath.Dir(tl)
	labs := filepath.Dir(labDir)
	if !filepath.IsAbs(clean) || filepath.Base(tl) != "timelines" || filepath.Base(labs) != "labs" || !strings.HasSuffix(clean, ".json") || name == "" {
		return "", "", "", fmt.Errorf("%s is not a timeline's spec (ROOT/labs/LAB/timelines/NAME.json)", path)
	}
	return filepath.Dir(labs), filepath.Base(labDir), name, nil
}

// StartTimeline starts the supervisor of the timeline's runner, after
// ending one already running, and waits until the runner runs.
func (s *Supervisor) StartTimeline(name string) error {
	base := s.timelineBase(name)
	if err := s.store.PrivateDir(filepath.Dir(base)); err != nil {
		return err
	}
	if err := s.StopTimeline(name); err != nil {
		return err
	}
	return s.startSupervisor(base, TimelineSpec(s.lab, name))
}

// StopTimeline ends the supervisor of a timeline's runner by PID (it tells
// the runner to stop, which finishes the step it is carrying out), and a
// runner left by a supervisor that was killed, and removes their files but
// the logs. nil when it is not running.
func (s *Supervisor) StopTimeline(name string) error {
	base := s.timelineBase(name)
	var errs []error
	if pid, ok := s.liveSupervisor(base); ok {
		fmt.Fprintf(s.log, "stopping timeline %s (supervisor %d)\n", name, pid)
		if left := proc.Stop([]int{pid}, 2*GraceTime); len(left) > 0 {
			errs = append(errs, fmt.Errorf("timeline %s: supervisor %d did not stop", name, pid))
		}
	}
	if st, err := service.ReadState(base); err == nil && st.PID != 0 {
		if start, ok := proc.StartTime(st.PID); ok && start == st.Start {
			syscall.Kill(-st.PID, syscall.SIGKILL) // its process group
			proc.Stop([]int{st.PID}, GraceTime)
		}
	}
	for _, ext := range []string{".pid", ".state", ".json"} {
		os.Remove(base + ext)
	}
	return errors.Join(errs...)
}

// StopTimelines stops the runners of every timeline of the lab; it returns
// the timelines whose runner it stopped.
func (s *Supervisor) StopTimelines() ([]string, error) {
	specs, _ := filepath.Glob(filepath.Join(TimelinesDir(s.store.Dir(s.lab)), "*.json"))
	var stopped []string
	var errs []error
	for _, f := range specs {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		_, live := s.liveSupervisor(strings.TrimSuffix(f, ".json"))
		if err := s.StopTimeline(name); err != nil {
			errs = append(errs, err)
			continue
		}
		if live {
			stopped = append(stopped, name)
		}
	}
	return stopped, errors.Join(errs...)
}

// ObserveTimelines puts the lab's timeline runners that have a spec,
// running or not, into the snapshot.
func (s *Supervisor) ObserveTimelines(snap *state.Snapshot) {
	specs, _ := filepath.Glob(filepath.Join(TimelinesDir(s.store.Dir(s.lab)), "*.json"))
	for _, f := range specs {
		base := strings.TrimSuffix(f, ".json")
		name := filepath.Base(base)
		tp := &state.TimelineProc{}
		if pid, ok := s.liveSupervisor(base); ok {
			tp.Supervisor = pid
		}
		if st, err := service.ReadState(base); err == nil {
			tp.PID, tp.Restarts, tp.Exit = st.PID, st.Restarts, st.Exit
			if tp.Supervisor == 0 {
				tp.PID = 0
			}
		}
		if snap.Timelines == nil {
			snap.Timelines = map[string]*state.TimelineProc{}
		}
		snap.Timelines[name] = tp
	}
}
