#!/usr/bin/env bash
# naive.sh N ovs|linux PREFIX up|down: the star lab of bench/star built (up)
# or removed (down) the way a plain shell script does it, one `ip`,
# `ovs-vsctl` or `ethtool` process per step. The baseline netlab must beat by
# far. Names and what is (not) done: bench/lib.sh. Touches only ${PREFIX}*.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "$VERB" = up ]; then
	if [ "$BR" = ovs ]; then
		vsctl add-br "$BRIDGE" -- set bridge "$BRIDGE" datapath_type=$DATAPATH
	else
		ip link add "$BRIDGE" type bridge
	fi
	ip link set "$BRIDGE" up
	for ((i = 1; i <= N; i++)); do
		n=$(ns $i) p=$(port $i) c=$(tmpname $i)
		ip netns add "$n"
		ip -n "$n" link set lo up
		ip link add "$p" type veth peer name "$c"
		ip link set "$c" netns "$n"
		ip -n "$n" link set "$c" name eth0
		ip -n "$n" addr add "$(addr $i)" dev eth0
		ip -n "$n" link set eth0 up
		if [ "$BR" = ovs ]; then
			vsctl add-port "$BRIDGE" "$p"
			if [ "$TXOFF" != 0 ]; then
				ethtool -K "$p" tx off >/dev/null
				ip netns exec "$n" ethtool -K eth0 tx off >/dev/null
			fi
		else
			ip link set "$p" master "$BRIDGE"
		fi
		ip link set "$p" up
	done
else
	for ((i = 1; i <= N; i++)); do
		n=$(ns $i) p=$(port $i)
		[ "$BR" = ovs ] && vsctl --if-exists del-port "$BRIDGE" "$p"
		ip link del "$p" 2>/dev/null || true
		ip netns del "$n" 2>/dev/null || true
	done
	if [ "$BR" = ovs ]; then
		vsctl --if-exists del-br "$BRIDGE"
	else
		ip link del "$BRIDGE" 2>/dev/null || true
	fi
fi
