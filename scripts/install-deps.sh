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
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: netlab needs Go 1.26.8 or newer (its go.mod says so).
export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go is not installed; install Go 1.26.8 or newer from https://go.dev/dl/ (Debian's golang-go is too old)" >&2
  exit 1
fi
