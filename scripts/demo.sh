#!/usr/bin/env bash
# make demo: brings up labs/blue-red.yaml, shows pings and a TCP transfer
# between blue and red, prints the status, and says how to take it down.
set -euo pipefail
netlab=${1:-bin/netlab}
lab=labs/blue-red.yaml

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "netlab up $lab"
"$netlab" up "$lab"

say "netlab up $lab (again: nothing to do)"
"$netlab" up "$lab"

say "ping red from blue, through the Open vSwitch bridge"
ip netns exec blue ping -c 3 -i 0.2 -W 1 10.0.0.2
say "ping the bridge's own address (the host side) from red"
ip netns exec red ping -c 2 -i 0.2 -W 1 10.0.0.254
say "ping6 red from blue"
ip netns exec blue ping -6 -c 2 -i 0.2 -W 1 fd00:10::2

say "TCP: iperf3 from blue to red for 2 seconds"
pidfile=$(mktemp)
ip netns exec red iperf3 -s -1 -D -I "$pidfile" >/dev/null
trap '[ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile"' EXIT
for _ in $(seq 50); do
  ip netns exec red ss -ltn 2>/dev/null | grep -q ':5201 ' && break
  sleep 0.1
done
ip netns exec blue iperf3 -c 10.0.0.2 -t 2 -f m | tail -n 4

say "netlab check blue-red (the expectations in the file)"
"$netlab" check blue-red

say "netlab flows blue-red (what the learning switch learned)"
"$netlab" flows blue-red | sed -n '/learned MACs/,$p'

say "netlab status blue-red"
"$netlab" status blue-red

say "done"
echo "The lab stays up. Try:  ip netns exec blue ping 10.0.0.2"
echo "Take it down with:      $netlab down blue-red     (or: make demo-down)"
