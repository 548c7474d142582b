package kernel

import "sync"

// rtnlGate keeps this run's own kernel requests out of the way of the
// writes to disable_ipv6 it makes while veths are made in parallel.
//
// The kernel does not wait for its RTNL lock in such a write: it tries the
// lock, and while another holds it, it has the system call start over
// (addrconf_disable_ipv6: rtnl_net_trylock, else restart_syscall). The
// writer spins on a CPU for as long as the lock is held, and each veth made
// at the same time holds it for most of its request. With bridge ports of
// 1,000 namespaces made two at a time, the spinning was half of the CPU
// time of the veth step, which took longer than making them one at a time
// (1.4–1.7 s against 1.0–1.1 s on 2 CPUs). Requests that made veths hold
// the gate shared; a disable_ipv6 write holds it alone, so it finds the
// lock free unless another program (ovs-vswitchd reading links) holds it.
type rtnlGate struct{ mu sync.RWMutex }

// gate is the namespace's cache's gate; a namespace opened alone has none
// (nil: entering and leaving it do nothing).
func (n *NS) gate() *rtnlGate {
	if n.cache == nil {
		return nil
	}
	return &n.cache.rtnl
}

// enter holds the gate shared, for requests that take RTNL.
func (g *rtnlGate) enter() {
	if g != nil {
		g.mu.RLock()
	}
}

// leave lets go of what enter held.
func (g *rtnlGate) leave() {
	if g != nil {
		g.mu.RUnlock()
	}
}

// alone runs f with the gate held by the caller alone; the caller holds it
// shared (enter) before and after.
func (g *rtnlGate) alone(f func() error) error {
	if g == nil {
		return f()
	}
	g.mu.RUnlock()
	g.mu.Lock()
	defer func() {
		g.mu.Unlock()
		g.mu.RLock()
	}()
	return f()
}
