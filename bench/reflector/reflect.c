/*
 * Minimal C reflector: the speed baseline for internal/reflector.
 * Attaches to an existing TUN device by name (in the caller's network
 * namespace: run it with `ip netns exec NS`), then reads each packet, swaps
 * the IPv4/IPv6 source and destination addresses and writes it back.
 * Blocking I/O, one queue, no vnet header. Build: gcc -O2 -o reflect reflect.c
 * Usage: reflect IFNAME [mq]   ("mq" adds IFF_MULTI_QUEUE for a multi-queue device)
 */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s IFNAME [mq]\n", argv[0]);
		return 2;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("open /dev/net/tun");
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	if (argc > 2 && strcmp(argv[2], "mq") == 0)
		ifr.ifr_flags |= IFF_MULTI_QUEUE;
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		return 1;
	}
	ioctl(fd, TUNSETOFFLOAD, 0); /* plain packets, full checksums */
	static unsigned char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			perror("read");
			return 1;
		}
		if (n >= 20 && buf[0] >> 4 == 4) {
			uint32_t a, b;
			memcpy(&a, buf + 12, 4);
			memcpy(&b, buf + 16, 4);
			memcpy(buf + 12, &b, 4);
			memcpy(buf + 16, &a, 4);
		} else if (n >= 40 && buf[0] >> 4 == 6) {
			unsigned char t[16];
			memcpy(t, buf + 8, 16);
			memcpy(buf + 8, buf + 24, 16);
			memcpy(buf + 24, t, 16);
		} else {
			continue;
		}
		if (write(fd, buf, n) < 0)
			perror("write");
	}
}
