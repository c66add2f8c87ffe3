#!/usr/bin/env bash
# The scale run: one server ip:port, clients on this host. Unpatched, every connection comes from
# 127.0.0.1 and the host stops at the ephemeral-port ceiling (28,232 with the default range);
# under `sockshim run` each connection has its own source address and the run goes past it.
# A process here holds at most 20,000 descriptors, so the server is several workers on one
# SO_REUSEPORT port and the clients several processes sharing one pool. Runs in a network
# namespace made for it (root), so its sysctls and ports are its own.
# Usage: bash bench/scale.sh [connections=100000] [per-client=14500]
set -euo pipefail
total=${1:-100000}
per=${2:-14500}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh needs root (a network namespace)" >&2; exit 1; }
[ "$per" -le 19000 ] || { echo "per-client must be at most 19000: a process holds 20,000 descriptors here" >&2; exit 2; }
out=$(mktemp -d)
ns="ssscale$$"
server=127.0.0.1:9000
cleanup() {
  exec 3>&- 4>&- 2>/dev/null || true
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$out" "/dev/shm/sockshim-scale-$$"
}
trap cleanup EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
./sockshim prepare > /dev/null
bench="$out/bench/SockShim.Bench.dll"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%F)"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
echo "ephemeral ports: $(ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-')"

# Waits until N files named PREFIX* each have a line matching PATTERN (at most LIMIT seconds).
wait_lines() { local prefix=$1 n=$2 pattern=$3 limit=$4 i=0
  while [ "$(grep -l "$pattern" "$prefix"* 2>/dev/null | wc -l)" -lt "$n" ] && [ $i -lt $((limit * 10)) ]; do sleep 0.1; i=$((i + 1)); done; }
sum_field() { grep -h "$2" "$1"* | awk -v f="$3" '{s += $f} END {print s + 0}'; }

start_servers() { # $1: phase
  mkfifo "$out/stop-servers-$1"; exec 3<>"$out/stop-servers-$1"
  workers=$(( (total + 30000) / 15000 + 1 ))
  for i in $(seq 1 $workers); do
    ip netns exec "$ns" dotnet "$bench" scale-server "$server" < "$out/stop-servers-$1" > "$out/server-$1-$i.log" 2>&1 &
  done
  wait_lines "$out/server-$1-" "$workers" listening 60
}
stop() { exec 3>&- 4>&-; sleep 1; for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; done; sleep 1; }

run_clients() { # $1 phase, $2 processes, $3 per process, rest: launcher prefix
  local phase=$1 procs=$2 each=$3; shift 3
  mkfifo "$out/stop-clients-$phase"; exec 4<>"$out/stop-clients-$phase"
  local t0; t0=$(date +%s.%N)
  local avail0; avail0=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  for i in $(seq 1 "$procs"); do
    ip netns exec "$ns" "$@" dotnet "$bench" scale-client "$server" "$each" < "$out/stop-clients-$phase" > "$out/client-$phase-$i.log" 2>&1 &
  done
  wait_lines "$out/client-$phase-" "$procs" established 600
  local t1; t1=$(date +%s.%N)
  established=$(sum_field "$out/client-$phase-" established 2)
  errors=$(grep -h established "$out/client-$phase-"* | sed -E 's/.*errors ([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
  rss=$(grep -h established "$out/client-$phase-"* | sed -E 's/.*rss ([0-9]+) MB.*/\1/' | awk '{s+=$1} END {print s+0}')
  elapsed=$(echo "$t1 - $t0" | bc)
  local avail1; avail1=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
  sockets=$(ip netns exec "$ns" awk '/^TCP:/ {print $3}' /proc/net/sockstat)
  echo "$phase: established $established of $((procs * each)) attempted in ${elapsed%.*}.$(echo "${elapsed#*.}" | cut -c1) s by $procs processes, errors $errors"
  echo "  memory: clients' RSS $rss MB; host memory in use grew $(( (avail0 - avail1) / 1024 )) MB (both ends' sockets, all processes); TCP sockets in the namespace: $sockets"
  { grep -h "first:" "$out/client-$phase-"* || true; } | sed -E 's/.*\(first: ([^)]*)\).*/  first error: \1/' | sort -u | head -2
}

start_servers plain
run_clients unpatched 2 15000
stop
start_servers patched
procs=$(( (total + per - 1) / per ))
run_clients sockshim "$procs" "$per" env SOCKSHIM_STATEDIR="/dev/shm/sockshim-scale-$$" "$PWD/sockshim" run --pool 127.64.0.0/12 --
grep -h "distinct" "$out/client-sockshim-"* | sed -E 's/.*distinct source addresses ([0-9]+).*/\1/' | awk '{s+=$1} END {print "  distinct source addresses: " s}'
# The workers report every half second; give their accept queues a moment to drain.
accepted() { for f in "$out"/server-patched-*; do grep accepted "$f" | tail -1; done | awk '{s+=$2} END {print s+0}'; }
for _ in $(seq 1 40); do [ "$(accepted)" -ge "$established" ] && break; sleep 0.5; done
server_total=$(accepted)
echo "  the server workers accepted $server_total"
[ "$established" -ge "$total" ] && echo "100,000-connection target: MET ($established)" || echo "100,000-connection target: MISSED ($established)"
stop
