# Shared by bench/naive.sh and bench/batched.sh (sourced, not run): the
# arguments, the names and the Open vSwitch to talk to. Both scripts build
# the lab bench/star generates, under the same prefix and names:
#   bridge ${P}br (OVS userspace datapath, or Linux), namespaces ${P}h001..,
#   each with eth0 at 10.77.x.y/16 and lo up, host veth ends ${P}p001.. up
#   and attached to the bridge; on OVS, tx checksum offload off on both veth
#   ends, as netlab does (without it TCP through the userspace datapath
#   times out; TXOFF=0 skips it, to see what it costs).
# Not done (netlab does them): interface aliases (netlab's markers), the six
# per-namespace sysctls netlab writes (ip_forward, forwarding, rp_filter,
# accept_dad), ofport_request, the journal.

usage() {
	echo "usage: $0 N ovs|linux PREFIX up|down" >&2
	exit 2
}
[ $# -eq 4 ] || usage
N=$1 BR=$2 P=$3 VERB=$4
case $N in '' | *[!0-9]*) usage ;; esac
case $BR in ovs | linux) ;; *) usage ;; esac
case $VERB in up | down) ;; *) usage ;; esac
case $P in *[!a-z0-9-]* | '') usage ;; esac
TXOFF=${TXOFF:-1}
BRIDGE=${P}br

ns() { printf '%sh%03d' "$P" "$1"; }
port() { printf '%sp%03d' "$P" "$1"; }
tmpname() { printf '%sc%03d' "$P" "$1"; } # the ns end before it is moved and renamed
addr() { echo "10.77.$(($1 / 250)).$(($1 % 250 + 1))/16"; }

# The OVS netlab uses: the system one if its db socket exists, else
# netlab's private instance (bench/run keeps it up with a tiny lab).
if [ "$BR" = ovs ]; then
	if [ -z "${OVSDB:-}" ]; then
		for s in /run/openvswitch/db.sock /var/run/openvswitch/db.sock /run/netlab/ovs/db.sock; do
			if [ -S "$s" ]; then
				OVSDB=unix:$s
				break
			fi
		done
	fi
	[ -n "${OVSDB:-}" ] || {
		echo "$0: no Open vSwitch runs (bring up a netlab lab with an OVS bridge first)" >&2
		exit 1
	}
	vsctl() { ovs-vsctl --db="$OVSDB" --timeout=30 "$@"; }
	# netlab's choice: the kernel datapath when the module exists, else userspace.
	if [ -d /sys/module/openvswitch ] || grep -qs '/openvswitch\.ko' "/lib/modules/$(uname -r)/modules.dep" "/lib/modules/$(uname -r)/modules.builtin"; then
		DATAPATH=system
	else
		DATAPATH=netdev
	fi
fi
