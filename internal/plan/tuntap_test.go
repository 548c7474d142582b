package plan

import (
	"strings"
	"testing"
)

const tuntapLab = `
name: tt
namespaces:
  vm:
    tuns:
      tun0: {reflector: true, queues: 2, addresses: [10.9.0.1/24]}
    taps:
      tap0: {owner: 1000, group: 1000, multi-queue: true, vnet-hdr: true}
`

// A TUN/TAP device whose mode, multi-queue flag, owner or group differ from
// the file is deleted and made again (the kernel cannot change the first two;
// netlab sets the others at creation); a reflector on a remade TUN is
// stopped first and started again after. vnet-hdr is not compared: the
// program that attaches a queue sets it.
func TestTuntapRemadeWhenFixedSettingsChange(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string // the plan, in order
	}{
		{"TAP multi-queue off", "multi-queue: true", "multi-queue: false", []string{
			"ip -n vm link del tap0",
			"ip -n vm tuntap add dev tap0 mode tap user 1000 group 1000 vnet_hdr",
		}},
		{"TAP owner", "owner: 1000, group: 1000", "owner: 1001, group: 1000", []string{
			"ip -n vm link del tap0",
			"ip -n vm tuntap add dev tap0 mode tap user 1001 group 1000 multi_queue vnet_hdr",
		}},
		{"TAP vnet-hdr only", "vnet-hdr: true", "vnet-hdr: false", nil},
		{"TUN reflector to UDP bridge", "reflector: true, queues: 2", "udp: {listen: 127.0.0.1:40001, send: 127.0.0.1:40002}", []string{
			"kill $(cat /run/netlab/labs/tt/proc/vm-tun0.pid)",
			"ip -n vm link del tun0",
			"ip -n vm tuntap add dev tun0 mode tun",
			"netlab reflect --ns vm --dev tun0 --udp-listen",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine()
			m.converge(t, parse(t, "tt.yaml", tuntapLab))
			p := m.converge(t, parse(t, "tt.yaml", strings.Replace(tuntapLab, tc.from, tc.to, 1)))
			containsInOrder(t, p.String(), tc.want)
			if tc.want == nil && len(p) != 0 {
				t.Errorf("plan for a vnet-hdr change:\n%s", p)
			}
		})
	}
}

// A reflector's cpus go to the process as --cpus, and set its default
// queues (one reader per CPU); changing them restarts it. A CPU that is not
// online here is an error naming the field, before anything is planned.
func TestReflectorCPUs(t *testing.T) {
	lab := `
name: tt
namespaces:
  vm:
    tuns:
      tun0: {reflector: true, cpus: [1]}
      tun1: {udp: {listen: 127.0.0.1:40001, send: 127.0.0.1:40002}, cpus: [0]}
`
	m := newMachine()
	m.snap.CPUs = []int{0, 1}
	p := m.converge(t, parse(t, "tt.yaml", lab))
	containsInOrder(t, p.String(), []string{
		"netlab reflect --ns vm --dev tun0 --queues 1 --vnet-hdr --cpus 1",
	})
	containsInOrder(t, p.String(), []string{
		"netlab reflect --ns vm --dev tun1 --udp-listen 127.0.0.1:40001 --udp-send 127.0.0.1:40002 --udp-ns host --cpus 0",
	})

	p = m.converge(t, parse(t, "tt.yaml", strings.Replace(lab, "cpus: [1]", "cpus: [1, 0]", 1)))
	containsInOrder(t, p.String(), []string{
		"kill $(cat /run/netlab/labs/tt/proc/vm-tun0.pid)",
		"netlab reflect --ns vm --dev tun0 --queues 2 --vnet-hdr --cpus 0-1",
	})
	if strings.Contains(p.String(), "tun1") {
		t.Errorf("the UDP bridge, unchanged, is restarted:\n%s", p)
	}

	_, err := Make(Input{Lab: parse(t, "tt.yaml", strings.Replace(lab, "cpus: [1]", "cpus: [3]", 1)), Snapshot: m.snap, Journal: m.j})
	want := "tt.yaml:6:37: namespaces.vm.tuns.tun0.cpus: CPU 3 is not online on this machine (online: 0-1)"
	if err == nil || err.Error() != want {
		t.Errorf("offline CPU: %v\nwant %s", err, want)
	}
}
