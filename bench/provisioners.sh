#!/usr/bin/env bash
# Per-socket acquire+release cost of each provisioner, side by side in one run, next to its
# target: the loopback pool (<= 1 us), netlink (<= 30 us, IPv4 and IPv6; IPv6 also <= 1.2x the
# kernel's own add+del of the same addresses, timed just before it), AnyIP (no target:
# nothing per address), netlink IPv6 with the interface in MLDv1 mode, netlink with prefetch, and
# the lifetime refresh a DHCP renewal does per address.
# netlink and AnyIP run in a network namespace made for the run (root).
# Usage: bash bench/provisioners.sh [n=200000] [n-netlink=5000]
set -euo pipefail
n=${1:-200000}
nl=${2:-5000}
cd "$(dirname "$0")/.."
out=$(mktemp -d)
ns="ssbench$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$out" /dev/shm/sockshim-bench-$$; }
trap cleanup EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
bench="$out/bench/SockShim.Bench.dll"
state="/dev/shm/sockshim-bench-$$"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F)"

SOCKSHIM_STATEDIR=$state SOCKSHIM_POOL=127.106.0.0/16 dotnet "$bench" acquire-release "$n" "loopback pool" 1000

if [ "$(id -u)" != 0 ]; then echo "netlink, anyip: skipped (they need root for a network namespace)"; exit 0; fi
ip netns add "$ns"
ip -n "$ns" link add dummy0 type veth peer name dummy1  # no dummy module here: one end of a veth pair
ip -n "$ns" link set dummy1 up
ip -n "$ns" link set dummy0 up
ip -n "$ns" link set lo up
ip -n "$ns" route add local 203.0.113.0/24 dev lo
ip -n "$ns" -6 route add local 2001:db8:1::/64 dev lo
run() { ip netns exec "$ns" env SOCKSHIM_STATEDIR=$state "$@"; }
run SOCKSHIM_POOL=198.51.100.1-198.51.100.254 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 dotnet "$bench" acquire-release "$nl" "netlink IPv4" 30000
# IPv6 beside the kernel's own add+del of the same addresses in the same order (raw-netlink),
# and the same with the wait for the local route that a usable address needs. Each run starts
# after 3 s of quiet: a removed address's MLDv2 record of its solicited-node group leaves only
# once the interface has had no group change for 2 jiffies, so records left by the run before
# would otherwise weigh on the next (the kernel walks them on every add).
v6() {  # POOL STRATEGY LABEL: raw, raw until usable, then SockShim with its ratios to both
  local pool=$1 strategy=$2 label=$3 raw usable
  nlrun() { run SOCKSHIM_POOL="$pool" SOCKSHIM_STRATEGY="$strategy" SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 dotnet "$bench" "$@"; }
  sleep 3
  raw=$(nlrun raw-netlink "$nl")
  echo "$raw"
  sleep 3
  usable=$(nlrun raw-netlink "$nl" usable)
  echo "$usable"
  sleep 3
  nlrun acquire-release "$nl" "$label" 30000 "$(median "$raw")" "$(median "$usable")"
}
median() { sed -n 's/.*(median \([0-9]*\) ns).*/\1/p' <<< "$1"; }
# A /112: every address its own solicited-node group (RFC 4291 2.7.1, the low 24 bits), so each
# add joins a group and each delete leaves one.
v6 2001:db8:d::/112 lrr "netlink IPv6"
# The one-group strategy on a /64: addresses 2^24 apart, one solicited-node group for them all.
v6 2001:db8:d::/64 one-group "netlink IPv6 one-group"
# Each removed IPv6 address leaves an MLDv2 record of its solicited-node group, cleared by the
# interface's report work, which every group change puts off by 2 jiffies: under steady churn
# they pile up, and the kernel walks them on every add. With MLDv1 there are none.
ip netns exec "$ns" sysctl -qw net.ipv6.conf.dummy0.force_mld_version=1
run SOCKSHIM_POOL=2001:db8:e::/112 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 dotnet "$bench" acquire-release "$nl" "netlink IPv6 MLDv1" 30000
ip netns exec "$ns" sysctl -qw net.ipv6.conf.dummy0.force_mld_version=0
# Prefetch 16: addresses put on the interface ahead of the sockets, and a released one kept
# for the next socket while the reserve has room, so this loop does no netlink work.
run SOCKSHIM_POOL=198.51.100.1-198.51.100.254 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_PREFETCH=16 dotnet "$bench" acquire-release "$nl" "netlink IPv4 prefetch" 30000
run SOCKSHIM_POOL=2001:db8:f::/112 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_PREFETCH=16 dotnet "$bench" acquire-release "$nl" "netlink IPv6 prefetch" 30000
# Conflict detection for a static pool shared by hosts (--conflict-probe 200: an RFC 5227 ARP
# probe and a 200 ms wait before each add; nobody answers on this link): without prefetch every
# socket waits; with prefetch the reserve's addresses were probed ahead, and a released one stays.
run SOCKSHIM_POOL=198.51.100.1-198.51.100.254 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_CONFLICTPROBE=200 dotnet "$bench" acquire-release 10 "netlink IPv4 probe 200"
run SOCKSHIM_POOL=198.51.100.1-198.51.100.254 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_CONFLICTPROBE=200 SOCKSHIM_PREFETCH=16 dotnet "$bench" acquire-release "$nl" "netlink IPv4 probe 200 prefetch" 30000
# IPv6: the probe is the kernel's duplicate address detection (a solicitation from ::, then its
# wait: 1-2 s with the default sysctls), awaited before the address is used.
run SOCKSHIM_POOL=2001:db8:b::/112 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_CONFLICTPROBE=1 dotnet "$bench" acquire-release 2 "netlink IPv6 DAD"
run SOCKSHIM_POOL=2001:db8:b::/112 SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=dummy0 SOCKSHIM_CONFLICTPROBE=1 SOCKSHIM_PREFETCH=16 dotnet "$bench" acquire-release "$nl" "netlink IPv6 DAD prefetch" 30000
# A DHCP renewal sets its address's lifetime again (NLM_F_REPLACE): per address, against how
# many addresses the interface has (the kernel walks them to find the one to replace).
run dotnet "$bench" refresh dummy0 198.51.100.1 250
run dotnet "$bench" refresh dummy0 2001:db8:c::1 250
run dotnet "$bench" refresh dummy0 2001:db8:c::1 4000
run SOCKSHIM_POOL=203.0.113.1-203.0.113.254 SOCKSHIM_PROVISIONER=anyip dotnet "$bench" acquire-release "$n" "anyip IPv4"
run SOCKSHIM_POOL=2001:db8:1::/112 SOCKSHIM_PROVISIONER=anyip dotnet "$bench" acquire-release "$n" "anyip IPv6"
