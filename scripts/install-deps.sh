#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages netlab and its tests need, and only
# those that are missing. Safe to run again. Needs root.
set -euo pipefail

# command -> package
declare -A need=(
  [ovs-vsctl]=openvswitch-switch
  [ip]=iproute2
  [nft]=nftables
  [ping]=iputils-ping
  [iperf3]=iperf3
  [ethtool]=ethtool
  [tcpdump]=tcpdump
  [nc]=netcat-openbsd
  [iptables-save]=iptables
  [dot]=graphviz
  [pgrep]=procps
  [setpriv]=util-linux
  [setcap]=libcap2-bin
  # make test checks that the AppArmor profile parses (packaging/apparmor)
  [apparmor_parser]=apparmor
  # Real routing daemons for labs/ospf and the services tests (not on PATH).
  [/usr/lib/frr/zebra]=frr
  # the e2e suite's real consumer of partitions: a three-member cluster
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  [osken-manager]=python3-os-ken   # the OpenFlow controller of labs/controller.yaml and its test
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "install-deps: missing packages ${missing[*]}; run as root (sudo make ...)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # iperf3 asks whether to start a daemon; say no.
  echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
  # Packages such as frr would start their daemons on the machine itself;
  # netlab runs them inside labs only. A policy-rc.d that says no (unless
  # the machine has one of its own) keeps them stopped, and goes after.
  policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# install-deps (netlab): no daemon starts while it installs\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # etcd-server enables and starts a system etcd where systemd runs; the
  # tests start members of their own in lab namespaces and need none, so
  # the service this script just installed is stopped and disabled again
  # (where no init runs, none was started: invoke-rc.d finds no runlevel).
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [[ -d /run/systemd/system ]]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# Go: netlab needs Go 1.26.8 or newer (its go.mod says so).
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go is not installed; install Go 1.26.8 or newer from https://go.dev/dl/ (Debian's golang-go is too old)" >&2
  exit 1
fi
