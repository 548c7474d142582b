// Package reflector answers for every address routed to a TUN device: a
// userspace loop reads each packet, swaps its source and destination
// addresses and writes it back, so the local stack receives the mirror image
// of what it sent. Ping, UDP and TCP to any reflected address therefore reach
// the namespace's own sockets (an echo request comes back as a request to the
// sender, which the kernel then answers itself).
//
// The package has four layers: Reflect (pure, allocation-free byte swap),
// Run (the loop over a Device; on a TUN queue it reads in bursts while
// packets are queued), OpenQueues and Queue (the OS edge: queues attached
// by tundev on a thread inside the lab namespace, then read and written
// with direct system calls, like a C reflector) and Main (the `netlab
// reflect` process, which attaches, drops every capability, then runs one
// loop per queue).
package reflector
