package engine

import (
	"github.com/netlab-dev/netlab/internal/observe"
	"github.com/netlab-dev/netlab/topology"
)

// TUNUsers lists what of the lab opens /dev/net/tun (observe.TUNUsers): up
// refuses a lab that needs it when this user may not open the device.
func TUNUsers(lab *topology.Lab) []string { return observe.TUNUsers(lab) }

// Warnings says what on the machine would stop the lab from working as
// written without netlab changing it (observe.Warnings).
func (e *Engine) Warnings(lab *topology.Lab) []string { return observe.Warnings(lab) }
