package apply

import (
	"fmt"

	"github.com/netlab-dev/netlab/internal/namespace"
	"github.com/netlab-dev/netlab/internal/state"
	"github.com/netlab-dev/netlab/ovs"
	"github.com/netlab-dev/netlab/topology"
)

// RemoveHalfCreated removes the namespace files a crash left unmounted (a
// crash between creating /run/netns/NAME and binding the namespace on it):
// they are journaled, and cannot be opened, so observe would fail on them.
func RemoveHalfCreated(j *state.Journal) error {
	for _, name := range j.Namespaces {
		if !namespace.Exists(name) {
			if err := namespace.Delete(name); err != nil {
				return fmt.Errorf("remove half-created namespace %s: %w", name, err)
			}
		}
	}
	return nil
}

// RepairCrashLeftovers finishes, on the machine and in the snapshot, what a
// crash (or kill -9) interrupted between creating an object and marking it.
// The journal recorded the intent before the creation, and up had checked
// that no object of that name existed, so an unmarked object the journal
// names is ours:
//   - a journaled namespace with no marker and nothing but lo gets its marker;
//   - a journaled host link with no alias at all, of a kind netlab makes on
//     the host (state.CrashLeftoverKind), is deleted (the plan makes it
//     again).
//
// Anything carrying someone else's marker, or with content, stays a clash.
func (s *Session) RepairCrashLeftovers(j *state.Journal, snap *state.Snapshot) error {
	if s.ovs != nil {
		if err := s.RemoveDeadBridgeDevices(j, snap); err != nil {
			return err
		}
	}
	for _, name := range j.Namespaces {
		o := snap.Namespaces[name]
		if o == nil || o.Owner != "" || !o.OnlyLoopback() {
			continue
		}
		h, err := s.ns(name)
		if err != nil {
			return err
		}
		if err := h.MarkNamespace(s.lab); err != nil {
			return err
		}
		o.Owner = s.lab
	}
	host := snap.Namespaces[topology.Host]
	if host == nil {
		return nil
	}
	for _, name := range j.HostLinks {
		l := host.Links[name]
		if l == nil || l.Alias != "" || !state.CrashLeftoverKind(l.Kind) {
			continue
		}
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		if err := h.DeleteLink(name); err != nil {
			return err
		}
		delete(host.Links, name)
	}
	return nil
}

// RemoveDeadBridgeDevices deletes, on the machine and in the snapshot, the
// host devices of the lab's journaled OVS bridges that Open vSwitch no
// longer has: an ovs-vswitchd that dies without cleaning up (killed while
// it started, say) leaves each bridge's internal port behind as a TAP
// device of the bridge's name, unmarked. Only with a running OVS whose
// database lacks the bridge: a bridge it has keeps its device.
func (s *Session) RemoveDeadBridgeDevices(j *state.Journal, snap *state.Snapshot) error {
	host := snap.Namespaces[topology.Host]
	if host == nil {
		return nil
	}
	for _, name := range j.Bridges {
		l := host.Links[name]
		if l == nil || l.Alias != "" || l.Kind != state.KindTuntap || snap.Bridges[name] != nil {
			continue
		}
		h, err := s.ns(topology.Host)
		if err != nil {
			return err
		}
		if err := h.DeleteLink(name); err != nil {
			return fmt.Errorf("remove the device a dead Open vSwitch left for bridge %s: %w", name, err)
		}
		delete(host.Links, name)
	}
	return nil
}

// RemoveNetdevLeftover deletes the ovs-netdev device an ovs-vswitchd that
// died without cleaning up leaves in the host namespace: only once netlab
// has stopped its private instance and no ovs-vswitchd runs here.
func (s *Session) RemoveNetdevLeftover() (bool, error) {
	if ovs.VSwitchdRunning() {
		return false, nil
	}
	h, err := s.ns(topology.Host)
	if err != nil {
		return false, err
	}
	o, err := h.Observe(nil)
	if err != nil {
		return false, err
	}
	if l := o.Links["ovs-netdev"]; l == nil || l.Kind != state.KindTuntap || l.Alias != "" {
		return false, nil
	}
	return true, h.DeleteLink("ovs-netdev")
}
