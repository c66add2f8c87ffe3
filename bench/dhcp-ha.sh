#!/usr/bin/env bash
# A fleet's allocator measured: Kea alone, a Kea HA pair in hot-standby, and one in
# load-balancing (README "Fleets: a Kea HA pair"), each started fresh (empty memfile) on one
# bridge, every server in its own namespace, the client in another. For each: SockShim's leases
# per second for N clients (SockShim.Bench dhcp-rate: N sockets' leases, 64 at a time) and the
# time per lease one at a time; then Kea's own perfdhcp on the same fresh server with the same
# client count (--scenario avalanche -R N: N clients' DORA exchanges at once, timed to the last).
# Goal printed beside it: SockShim at least 0.5x perfdhcp's rate.
# Usage: bash bench/dhcp-ha.sh [clients=200]   (at most 240: perfdhcp relays (giaddr 192.0.2.1),
# and Kea 2.2 leased it only 192.0.2.10-250 of the shared network, 241 addresses, then no more)
# Needs root, kea-dhcp4-server (with its HA hook) and perfdhcp (`apt-get install kea-admin`).
set -euo pipefail
n=${1:-200}
[ "$n" -ge 1 ] && [ "$n" -le 240 ] || { echo "clients must be from 1 to 240 (perfdhcp's relayed requests get 192.0.2.10-250 only)" >&2; exit 2; }
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/dhcp-ha.sh needs root (network namespaces, ports 67 and 68)" >&2; exit 1; }
hooks=/usr/lib/x86_64-linux-gnu/kea/hooks
[ -x /usr/sbin/kea-dhcp4 ] && [ -f "$hooks/libdhcp_ha.so" ] || { echo "needs kea-dhcp4 and its HA hook ($hooks/libdhcp_ha.so): apt-get install kea-dhcp4-server" >&2; exit 1; }
command -v perfdhcp >/dev/null || { echo "needs perfdhcp, Kea's reference client: apt-get install kea-admin" >&2; exit 1; }
out=$(mktemp -d)
id=$$ br="ssbr$$" cli="sscl$$" k1="ssk1$$" k2="ssk2$$"
pids=()
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_servers
  for ns in "$cli" "$k1" "$k2" "$br"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$out" "/dev/shm/sockshim-bench-dhcpha-$id"
}
trap cleanup EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F); kea $(/usr/sbin/kea-dhcp4 -v); $n clients; load $(cut -d' ' -f1-3 /proc/loadavg)"

# The LAN: a bridge (it also holds .254 of each /24), servers at 192.0.2.8 and .9, the client at .1.
ip netns add "$br"; ip -n "$br" link add br0 type bridge forward_delay 0 stp_state 0
for s in 192.0.2 198.51.100 203.0.113; do ip -n "$br" addr add "$s.254/24" dev br0; done
ip -n "$br" link set br0 up; ip -n "$br" link set lo up
join() { # namespace address
  ip netns add "$1"; ip link add eth0 netns "$1" type veth peer name "p$1" netns "$br"
  ip -n "$br" link set "p$1" master br0; ip -n "$br" link set "p$1" up
  ip -n "$1" addr add "$2/24" dev eth0; ip -n "$1" link set eth0 up; ip -n "$1" link set lo up
}
join "$k1" 192.0.2.8; join "$k2" 192.0.2.9; join "$cli" 192.0.2.1

# One server's config: mode single (no HA), hot-standby or load-balancing; server 1 or 2.
# One DHCP thread: HA without kea-ctrl-agent needs multi-threading, and Kea handles one packet
# per client (client id, and MAC: all of a SockShim host's leases share one) at a time.
config() { # mode server
  local mode=$1 i=$2 hooks_json="" subnets="" s n=0
  for s in 192.0.2 198.51.100 203.0.113; do
    n=$((n + 1)); [ -n "$subnets" ] && subnets+=","
    if [ "$mode" = load-balancing ]; then
      subnets+="{ \"id\": $n, \"subnet\": \"$s.0/24\", \"pools\": [ { \"pool\": \"$s.10 - $s.129\", \"client-class\": \"HA_server1\" }, { \"pool\": \"$s.130 - $s.250\", \"client-class\": \"HA_server2\" } ] }"
    else
      subnets+="{ \"id\": $n, \"subnet\": \"$s.0/24\", \"pools\": [ { \"pool\": \"$s.10 - $s.250\" } ] }"
    fi
  done
  if [ "$mode" != single ]; then
    local role2=standby; [ "$mode" = load-balancing ] && role2=secondary
    hooks_json=", \"hooks-libraries\": [ { \"library\": \"$hooks/libdhcp_lease_cmds.so\" }, { \"library\": \"$hooks/libdhcp_ha.so\", \"parameters\": { \"high-availability\": [ {
      \"this-server-name\": \"server$i\", \"mode\": \"$mode\", \"heartbeat-delay\": 1000, \"max-response-delay\": 2000, \"max-ack-delay\": 1000, \"max-unacked-clients\": 0,
      \"multi-threading\": { \"enable-multi-threading\": true, \"http-dedicated-listener\": true, \"http-listener-threads\": 1, \"http-client-threads\": 1 },
      \"peers\": [ { \"name\": \"server1\", \"url\": \"http://192.0.2.8:8001/\", \"role\": \"primary\" }, { \"name\": \"server2\", \"url\": \"http://192.0.2.9:8001/\", \"role\": \"$role2\" } ] } ] } } ]"
  fi
  cat > "$out/kea$i.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "eth0" ], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$out/leases$i.csv", "lfc-interval": 0 },
  "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 1, "packet-queue-size": 1024 },
  "valid-lifetime": 3600, "authoritative": true $hooks_json,
  "shared-networks": [ { "name": "lan", "interface": "eth0", "subnet4": [ $subnets ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$out/kea$i.log" } ] },
               { "name": "kea-dhcp4.ha-hooks", "severity": "INFO", "output_options": [ { "output": "$out/kea$i.log" } ] } ] } }
EOF
}

# Starts the mode's servers with empty lease files and waits until they serve.
start() { # mode
  local mode=$1 count=2 i state ns
  [ "$mode" = single ] && count=1
  for i in $(seq 1 $count); do
    config "$mode" "$i"; rm -f "$out/leases$i.csv" "$out/kea$i.log"; : > "$out/kea$i.log"
    ns=$k1; [ "$i" = 2 ] && ns=$k2
    KEA_LOCKFILE_DIR=$out KEA_PIDFILE_DIR=$out ip netns exec "$ns" /usr/sbin/kea-dhcp4 -c "$out/kea$i.json" > "$out/kea$i.out" 2>&1 &
    pids+=($!)
  done
  state=$(echo "$mode" | tr a-z A-Z)
  for _ in $(seq 1 300); do
    if [ "$mode" = single ]; then ip netns exec "$k1" ss -lun | grep -q ':67 ' && grep -q . "$out/kea1.out" && return 0
    elif grep -q "to $state state" "$out/kea1.log" && grep -q "to $state state" "$out/kea2.log"; then return 0; fi
    sleep 0.1
  done
  echo "the $mode servers did not come up: $(tail -3 "$out"/kea*.log "$out"/kea*.out)" >&2; exit 1
}

run() { # mode label
  local mode=$1 label=$2 sockshim perf srate prate ptime
  start "$mode"
  sockshim=$(ip netns exec "$cli" env SOCKSHIM_STATEDIR="/dev/shm/sockshim-bench-dhcpha-$id" SOCKSHIM_POOL=192.0.2.0/24,198.51.100.0/24,203.0.113.0/24 \
    SOCKSHIM_EXCLUDE=192.0.2.0-192.0.2.9,192.0.2.254 SOCKSHIM_SOURCE=dhcp SOCKSHIM_PROVISIONER=netlink SOCKSHIM_INTERFACE=eth0 SOCKSHIM_DHCPRATE=10000 \
    dotnet "$out/bench/SockShim.Bench.dll" dhcp-rate "$n" 64)
  stop_servers
  start "$mode"
  perf=$(timeout 120 ip netns exec "$cli" perfdhcp -4 -l eth0 --scenario avalanche -R "$n" 2>&1) || { echo "perfdhcp failed or took over 120 s: $(echo "$perf" | tail -5)" >&2; exit 1; }
  stop_servers
  srate=$(echo "$sockshim" | awk '/leases\/s/ {for (i = 1; i <= NF; i++) if ($i == "leases/s,") print $(i - 1)}')
  # "It took 00:00:01.417887 to provision 200 clients."
  ptime=$(echo "$perf" | awk '/^It took/ {split($3, t, ":"); print t[1] * 3600 + t[2] * 60 + t[3]}')
  prate=$(awk -v n="$n" -v t="$ptime" 'BEGIN { if (t > 0) printf "%.0f", n / t; else print 0 }')
  echo "== $label"
  echo "$sockshim" | sed 's/^/  /'
  echo "  perfdhcp avalanche, $n clients: $prate leases/s ($ptime s in all)"
  awk -v s="$srate" -v p="$prate" 'BEGIN { r = s / p; printf "  sockshim / perfdhcp = %.2fx (goal >= 0.5x: %s)\n", r, (r >= 0.5 ? "MET" : "MISSED") }'
  one=$(echo "$sockshim" | awk '/one at a time/ {print $6}')
  if [ "$mode" = single ]; then alone_rate=$srate alone_one=$one
  else awk -v r="$srate" -v a="$alone_rate" -v o="$one" -v b="$alone_one" \
    'BEGIN { printf "  through the pair against Kea alone: %.2fx the time per lease for %s clients, %.2fx one at a time\n", a / r, ENVIRON["n"], o / b }'; fi
}
export n
alone_rate=0 alone_one=0

run single "Kea alone"
run hot-standby "Kea HA pair, hot-standby (the primary serves, each lease sent on to the standby before the ACK)"
run load-balancing "Kea HA pair, load-balancing (each server serves half the clients, each lease sent on to the other)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
