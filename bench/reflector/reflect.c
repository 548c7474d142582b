/*
 * Minimal C reflector: the speed baseline for internal/reflector.
 * Attaches to an existing TUN device by name (in the caller's network
 * namespace: run it with `ip netns exec NS`), then reads each packet, swaps
 * the IPv4/IPv6 source and destination addresses and writes it back.
 * Blocking I/O, one queue.
 *
 * Without options it takes plain packets (offloads off, full checksums), as
 * a minimal reflector does. With "vnet" it does what netlab's reflector does
 * by default: IFF_VNET_HDR with checksum, TSO and USO offloads, so the kernel
 * hands over GSO super-packets of up to 64 KiB, each after a 10-byte
 * virtio_net_hdr that is written back unchanged (the swap keeps every
 * checksum, partial or full, valid). That row is the C reference for the Go
 * reflector's own mode: the same system calls and copies, nothing else.
 *
 * Build: gcc -O2 -o reflect reflect.c
 * Usage: reflect IFNAME [mq] [vnet]   ("mq": the device is multi-queue)
 */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

#define VNET_HDR_LEN 10 /* struct virtio_net_hdr, the kernel's default size */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s IFNAME [mq] [vnet]\n", argv[0]);
		return 2;
	}
	int vnet = 0;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "mq") == 0)
			ifr.ifr_flags |= IFF_MULTI_QUEUE;
		else if (strcmp(argv[i], "vnet") == 0)
			vnet = 1;
		else {
			fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	if (vnet)
		ifr.ifr_flags |= IFF_VNET_HDR;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("open /dev/net/tun");
		return 1;
	}
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		return 1;
	}
	int off = 0;
	if (vnet) {
		unsigned long base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
		if (ioctl(fd, TUNSETOFFLOAD, base | TUN_F_USO4 | TUN_F_USO6) < 0 &&
		    ioctl(fd, TUNSETOFFLOAD, base) < 0) {
			perror("TUNSETOFFLOAD");
			return 1;
		}
		off = VNET_HDR_LEN;
	} else {
		ioctl(fd, TUNSETOFFLOAD, 0); /* plain packets, full checksums */
	}
	static unsigned char buf[65536 + VNET_HDR_LEN];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			perror("read");
			return 1;
		}
		unsigned char *p = buf + off;
		ssize_t len = n - off;
		if (len >= 20 && p[0] >> 4 == 4) {
			uint32_t a, b;
			memcpy(&a, p + 12, 4);
			memcpy(&b, p + 16, 4);
			memcpy(p + 12, &b, 4);
			memcpy(p + 16, &a, 4);
		} else if (len >= 40 && p[0] >> 4 == 6) {
			unsigned char t[16];
			memcpy(t, p + 8, 16);
			memcpy(p + 8, p + 24, 16);
			memcpy(p + 24, t, 16);
		} else {
			continue;
		}
		if (write(fd, buf, n) < 0)
			perror("write");
	}
}
