// Command attachq is a helper of e2e/tun_extra_test.go: run as a TAP's
// owner (no capability), it attaches N queues to the existing multi-queue
// TAP IFNAME in its network namespace and holds them all while it prints
//
//	attached N
//	single-queue attach: ERROR   (a multi-queue device refuses it: EINVAL)
//
// and then runs CMD, if given, with the queues still attached. It exits
// with CMD's exit code (0 without CMD), 1 if an attach fails.
//
// Usage: attachq IFNAME N [CMD ARGS...]
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

func attach(name string, flags uint16) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: attachq IFNAME N [CMD ARGS...]")
		os.Exit(2)
	}
	name := os.Args[1]
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "attachq: bad N")
		os.Exit(2)
	}
	const mq = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE
	for i := range n {
		if _, err := attach(name, mq); err != nil {
			fmt.Fprintf(os.Stderr, "attachq: %s: queue %d: %v\n", name, i, err)
			os.Exit(1)
		}
	}
	fmt.Printf("attached %d\n", n)
	_, err = attach(name, unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	fmt.Printf("single-queue attach: %v\n", err)
	if len(os.Args) == 3 {
		return
	}
	cmd := exec.Command(os.Args[3], os.Args[4:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "attachq: %v\n", err)
		os.Exit(1)
	}
}
