#!/usr/bin/env bash
# Time per DHCP lease against dnsmasq, in one run: a bare DISCOVER->ACK exchange (the floor),
# SockShim's DHCP pool one lease at a time (target <= 1.2x the bare exchange), and the pool
# with prefetched leases (target <= 50 us). Bare and pool alternate in rounds after a warm-up; the
# ratio is of per-lease medians, each lease started from an idle millisecond (why: DhcpBench's
# remarks); back-to-back rounds are printed beside it. Two namespaces and a veth pair (root).
# Usage: bash bench/dhcp.sh [leases=200]   (at most 240: the server's range is one documentation /24)
#        SOCKSHIM_DHCPPROBE=MS bash bench/dhcp.sh 200   the pool with the ARP probe (its cost decided
#        the default, 0: README's DHCP section); the bare exchange never probes.
# The load average is printed before and after: on a shared machine it moves the floor itself.
set -euo pipefail
n=${1:-200}
[ "$n" -ge 1 ] && [ "$n" -le 240 ] || { echo "leases must be from 1 to 240 (the server leases 198.51.100.10-250)" >&2; exit 2; }
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/dhcp.sh needs root (network namespaces, port 68)" >&2; exit 1; }
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || { echo "needs dnsmasq: apt-get install dnsmasq-base" >&2; exit 1; }
# The pace (SOCKSHIM_DHCPRATE) is lifted to its maximum: this measures the exchange, not the pace
# a snooping switch needs (4 a second by default would make one lease at a time 250 ms).
out=$(mktemp -d)
srv="ssdhs$$" cli="ssdhc$$"
cleanup() {
  [ -f "$out/dnsmasq.pid" ] && kill "$(cat "$out/dnsmasq.pid")" 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true; ip netns del "$cli" 2>/dev/null || true
  rm -rf "$out" /dev/shm/sockshim-bench-dhcp-$$
}
trap cleanup EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F); ARP probe ${SOCKSHIM_DHCPPROBE:-0} ms; load $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns add "$srv"; ip netns add "$cli"
ip link add eth0 netns "$cli" type veth peer name vs netns "$srv"
ip -n "$srv" addr add 198.51.100.254/24 dev vs
ip -n "$cli" addr add 198.51.100.1/24 dev eth0
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set vs up; ip -n "$cli" link set eth0 up
ip netns exec "$srv" /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --interface=vs --bind-interfaces \
  --dhcp-range=198.51.100.10,198.51.100.250,255.255.255.0,1h --dhcp-lease-max=5000 --dhcp-authoritative --no-ping \
  --dhcp-leasefile="$out/leases" --pid-file="$out/dnsmasq.pid" --user=root --log-facility="$out/dnsmasq.log" &
sleep 0.5
ip netns exec "$cli" env SOCKSHIM_STATEDIR=/dev/shm/sockshim-bench-dhcp-$$ SOCKSHIM_POOL=198.51.100.0/24 SOCKSHIM_SOURCE=dhcp \
  SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=eth0 SOCKSHIM_DHCPRATE=10000 dotnet "$out/bench/SockShim.Bench.dll" dhcp "$n" eth0
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
