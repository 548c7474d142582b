#!/usr/bin/env bash
# batched.sh N ovs|linux PREFIX up|down: the star lab of bench/star built
# (up) or removed (down) by a careful hand-batched script:
#   up:   one `ip -batch` in the host (namespaces; each veth made with its
#         eth0 end directly inside its namespace; host ends up, on a Linux
#         bridge attached); one `ip -n NS -batch` per namespace (lo, address,
#         eth0 up); one ovs-vsctl transaction for the bridge and all ports;
#         two ethtool runs per OVS port (tx checksum off on both veth ends;
#         ethtool has no batch form).
#         PORT_TYPE=afxdp-nonpmd|afxdp makes the OVS ports AF_XDP ones (XDP
#         mode native, as netlab does; in transactions of at most 16 such
#         ports, as ovs-vsctl's wait would otherwise outlast its patience).
#   down: one ovs-vsctl transaction (del-br: its ports go with it), then one
#         `ip -batch` deleting all namespaces (their veths go with them) and
#         the Linux bridge.
# Names and what is (not) done: bench/lib.sh. Touches only ${PREFIX}*.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "$VERB" = up ]; then
	{
		[ "$BR" = linux ] && echo "link add $BRIDGE type bridge" && echo "link set $BRIDGE up"
		for ((i = 1; i <= N; i++)); do echo "netns add $(ns $i)"; done
		for ((i = 1; i <= N; i++)); do
			p=$(port $i)
			echo "link add $p type veth peer name eth0 netns $(ns $i)"
			if [ "$BR" = linux ]; then echo "link set $p master $BRIDGE up"; else echo "link set $p up"; fi
		done
	} | ip -batch -
	for ((i = 1; i <= N; i++)); do
		printf 'link set lo up\naddr add %s dev eth0\nlink set eth0 up\n' "$(addr $i)" | ip -n "$(ns $i)" -batch -
	done
	if [ "$BR" = ovs ]; then
		args=(add-br "$BRIDGE" -- set bridge "$BRIDGE" datapath_type=$DATAPATH)
		case ${PORT_TYPE:-system} in
		system)
			for ((i = 1; i <= N; i++)); do args+=(-- add-port "$BRIDGE" "$(port $i)"); done
			vsctl "${args[@]}"
			;;
		afxdp | afxdp-nonpmd)
			vsctl "${args[@]}"
			for ((i = 1; i <= N; i += 16)); do
				args=()
				for ((j = i; j < i + 16 && j <= N; j++)); do
					args+=(-- add-port "$BRIDGE" "$(port $j)" -- set interface "$(port $j)" type="$PORT_TYPE" options:xdp-mode=native)
				done
				vsctl "${args[@]}"
			done
			;;
		*)
			echo "PORT_TYPE=$PORT_TYPE: want system, afxdp-nonpmd or afxdp" >&2
			exit 2
			;;
		esac
		ip link set "$BRIDGE" up
		if [ "$TXOFF" != 0 ]; then
			for ((i = 1; i <= N; i++)); do
				ethtool -K "$(port $i)" tx off >/dev/null
				ip netns exec "$(ns $i)" ethtool -K eth0 tx off >/dev/null
			done
		fi
	fi
else
	[ "$BR" = ovs ] && vsctl --if-exists del-br "$BRIDGE"
	{
		for ((i = 1; i <= N; i++)); do
			[ -e "/run/netns/$(ns $i)" ] && echo "netns del $(ns $i)"
		done
		[ "$BR" = linux ] && [ -e "/sys/class/net/$BRIDGE" ] && echo "link del $BRIDGE"
		true
	} | ip -force -batch -
fi
