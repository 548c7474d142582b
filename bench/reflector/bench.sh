#!/usr/bin/env bash
# Compares internal/reflector (Go) with the minimal C reflector (reflect.c)
# on identical throw-away namespaces, on this machine, in one run:
#   - flood ping: 10,000 echo requests of 1400 B to a reflected address (time);
#   - iperf3 TCP, client and server both in the namespace, the client
#     connecting to a reflected address (10.9.9.9), at TUN MTU 1500, 9000
#     and 65000.
# Rows: c (blocking read/write), go (reflector.Main, one queue), go-vnet
# (--vnet-hdr: TSO/USO offloads, 64 KiB GSO super-packets).
# Each figure is the median of REPS rounds, the rounds interleaving all rows,
# because a shared 2-CPU VM is noisy (single runs varied 2x here).
# Needs root, gcc, go, iperf3, ping, ip.
# Usage: bench.sh [SECONDS per iperf3 run (5)] [REPS (3)]
# Touches nothing but namespaces named nlrb<hex> it creates and deletes.
set -euo pipefail
T=${1:-5}
REPS=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
ns=""
rpid=""
cleanup() {
	[ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null || true
	[ -n "$ns" ] && ip netns delete "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

gcc -O2 -Wall -o "$tmp/reflect-c" "$here/reflect.c"
(cd "$root" && CGO_ENABLED=0 go build -o "$tmp/reflect-go" ./bench/reflector/goreflect)

# setup MTU: fresh namespace with a single-queue TUN refl0, 10.0.0.1/8.
setup() {
	ns="nlrb$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')"
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" ip tuntap add dev refl0 mode tun
	ip -n "$ns" link set refl0 mtu "$1" up
	ip -n "$ns" addr add 10.0.0.1/8 dev refl0
}
teardown() {
	kill "$rpid" 2>/dev/null || true
	wait "$rpid" 2>/dev/null || true
	rpid=""
	ip netns delete "$ns"
	ns=""
}
start() { # start IMPL: reflector in the background, PID in rpid
	case $1 in
	c) ip netns exec "$ns" "$tmp/reflect-c" refl0 & ;;
	go) "$tmp/reflect-go" --ns "$ns" --dev refl0 2>/dev/null & ;;
	go-vnet) "$tmp/reflect-go" --ns "$ns" --dev refl0 --vnet-hdr 2>/dev/null & ;;
	esac
	rpid=$!
	for _ in $(seq 50); do # wait for carrier (a queue attached)
		ip -n "$ns" link show refl0 | grep -q LOWER_UP && return 0
		sleep 0.1
	done
	echo "bench: $1 did not attach" >&2
	return 1
}
flood() { # prints seconds for 10,000 x 1400 B flood pings
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$ns" ping -q -f -c 10000 -s 1400 -W 1 10.0.0.41 >/dev/null
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}'
}
tcp() { # tcp [ADDR]: prints receiver Gbit/s of one iperf3 TCP run
	ip netns exec "$ns" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	local spid=$!
	sleep 0.3
	ip netns exec "$ns" iperf3 -c "${1:-10.9.9.9}" -p 5201 -t "$T" -f m 2>/dev/null |
		awk '/receiver/ {for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") printf "%.2f", $(i-1)/1000}'
	wait "$spid" 2>/dev/null || true
}

declare -A M # medians
declare -A R # "impl,metric" -> space-separated samples
impls=(c go go-vnet)
mtus=(1500 9000 65000)
add() { R[$1]="${R[$1]:-} $2"; }
for rep in $(seq "$REPS"); do
	# Reference: the same iperf3 over the namespace's loopback at the same
	# MTU, i.e. what this machine's TCP stack does with no TUN and no
	# reflector.
	for mtu in "${mtus[@]}"; do
		setup 1500
		ip -n "$ns" link set lo mtu "$mtu"
		add "lo,$mtu" "$(tcp 127.0.0.1)"
		ip netns delete "$ns"
		ns=""
	done
	for impl in "${impls[@]}"; do
		for mtu in "${mtus[@]}"; do
			setup "$mtu"
			start "$impl"
			if [ "$mtu" = 1500 ]; then add "$impl,ping" "$(flood)"; fi
			add "$impl,$mtu" "$(tcp)"
			teardown
		done
		echo "bench: round $rep: $impl done" >&2
	done
done
med() { echo "${R[$1]:-}" | tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
for k in "${!R[@]}"; do M[$k]=$(med "$k"); done
M[lo,ping]=-

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "-" }'; }
printf '\n%-10s %14s %14s %14s %14s\n' impl "ping 10k (s)" "TCP 1500" "TCP 9000" "TCP 65000"
for impl in lo "${impls[@]}"; do
	printf '%-10s %14s %10s Gb/s %9s Gb/s %9s Gb/s\n' "$impl" "${M[$impl,ping]}" \
		"${M[$impl,1500]}" "${M[$impl,9000]}" "${M[$impl,65000]}"
done
for impl in go go-vnet; do
	printf '%-10s %14s %14s %14s %14s\n' "$impl/c" "$(ratio "${M[c,ping]}" "${M[$impl,ping]}")x" \
		"$(ratio "${M[$impl,1500]}" "${M[c,1500]}")x" "$(ratio "${M[$impl,9000]}" "${M[c,9000]}")x" \
		"$(ratio "${M[$impl,65000]}" "${M[c,65000]}")x"
done
echo "(lo: iperf3 over 127.0.0.1 in a namespace, no reflector: the machine's ceiling)"
echo "(ratios: speed of Go over C; for ping, C time / Go time; $(nproc) CPUs, iperf3 ${T}s per run, median of $REPS)"
