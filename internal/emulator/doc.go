// Package emulator is the data plane of `netlab emulate`: a userspace link
// between two TAP devices, one where each end of the link would be, so that
// each side sees an ordinary interface while every frame passes a model of
// the link per direction (internal/linkmodel): loss, duplication,
// corruption, a rate or a Mahimahi trace with its queue, delay and jitter.
//
// The process attaches one queue to each TAP (with a virtio_net_hdr, so a
// sender's GSO super-frames cross as one frame where the model allows it),
// drops every capability, then runs two pumps. A pump's reader reads a
// frame, lets the model decide its fate and queue it, and writes at once
// what is due; its scheduler sleeps on a timerfd armed for the model's next
// departure (the Go runtime's timers are a millisecond coarse, a timerfd is
// not) and writes what leaves then. Both write under one lock taken before
// the model's is released, so frames leave in the model's order.
//
// netlab changes the model at run time by rewriting the model file and
// sending SIGHUP; the process applies it in place (nothing queued is
// dropped) and says so in its state file, which it also rewrites every
// second with its counters. While the process is dead the TAPs have no
// carrier (the kernel's, for a TAP no queue is attached to); while it runs,
// each TAP's carrier follows the other's administrative state, as a veth's
// follows its peer's, so a cable pulled on one end is seen on the other.
package emulator
