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
