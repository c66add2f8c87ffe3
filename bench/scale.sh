#!/usr/bin/env bash
# The scale run: one server ip:port, clients on this host. Unpatched, every connection comes from
# 127.0.0.1 and the host stops at the ephemeral-port ceiling (28,232 with the default range);
# under `sockshim run` each connection has its own source address and the run goes past it.
# A process here holds at most 20,000 descriptors, so the server is several workers on one
# SO_REUSEPORT port and the clients several processes sharing one pool. Runs in a network
# namespace made for it (root), so its sysctls and ports are its own.
# It prints what one held connection costs: each client's and each server worker's private memory
# (RssAnon) per connection, and the kernel's (slab, and TCP buffer pages in /proc/net/sockstat),
# measured around the patched run. The host's other work is protected: when MemAvailable falls
# below SCALE_MIN_AVAILABLE_MB (3072) the clients are frozen (SIGSTOP: no more connections, their
# memory stays to be measured), the figure reached is printed, and then they are killed.
# Usage: bash bench/scale.sh [connections=100000] [per-client=18000]
set -euo pipefail
total=${1:-100000}
per=${2:-18000}
min_avail_kb=$(( ${SCALE_MIN_AVAILABLE_MB:-3072} * 1024 ))
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh needs root (a network namespace)" >&2; exit 1; }
[[ "$total" =~ ^[0-9]+$ && "$total" -ge 1 ]] || { echo "bench/scale.sh: connections '$total' must be a positive whole number" >&2; exit 2; }
[[ "$per" =~ ^[0-9]+$ && "$per" -ge 1 && "$per" -le 19000 ]] || { echo "bench/scale.sh: per-client '$per' must be 1 to 19000: a process holds 20,000 descriptors here" >&2; exit 2; }
out=$(mktemp -d)
ns="ssscale$$"
server=127.0.0.1:9000
pool=127.64.0.0/12
statedir="/dev/shm/sockshim-scale-$$"
cleanup() {
  exec 3>&- 4>&- 2>/dev/null || true
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$out" "$statedir"
}
trap cleanup EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
./sockshim prepare > /dev/null
bench="$out/bench/SockShim.Bench.dll"
avail() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(date -u '+%F %H:%M') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), MemAvailable $(( $(avail) / 1024 )) MB"
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -q -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535

# What could stop the run before memory does, checked before it starts.
workers=$(( (total + 30000) / 15000 + 1 )) # about 15,000 each: SO_REUSEPORT's spread must stay under 20,000
procs=$(( (total + per - 1) / per ))
pool_size=$(( 1 << (32 - ${pool#*/}) ))
file_max=$(cat /proc/sys/fs/file-max)
need_files=$(( 2 * total + 200 * (workers + procs) ))
tcp_mem_max=$(awk '{print $3}' /proc/sys/net/ipv4/tcp_mem)
echo "limits: pool $pool has $pool_size addresses (the claim table holds up to $(( 1 << 20 )), 64 B each, one table for the host); fs.file-max $file_max for about $need_files descriptors; fs.nr_open $(cat /proc/sys/fs/nr_open), 20,000 per process here: $workers server workers, $procs clients of $per; net.ipv4.tcp_mem max $tcp_mem_max pages; somaxconn $(ip netns exec "$ns" cat /proc/sys/net/core/somaxconn); ephemeral ports $(ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_local_port_range | tr '\t' '-')"
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
  echo "  nf_conntrack is loaded (max $(cat /proc/sys/net/netfilter/nf_conntrack_max)); in the run's namespace it tracks only if rules there ask for it: checked after the run"
fi
[ "$pool_size" -ge "$total" ] || { echo "bench/scale.sh: the pool $pool has $pool_size addresses, fewer than $total connections" >&2; exit 2; }
[ "$file_max" -ge "$need_files" ] || { echo "bench/scale.sh: fs.file-max is $file_max; $total connections need about $need_files descriptors (both ends): sysctl -w fs.file-max=$need_files" >&2; exit 2; }

# Waits until N files named PREFIX* each have a line matching PATTERN (at most LIMIT seconds).
wait_lines() { local prefix=$1 n=$2 pattern=$3 limit=$4 i=0
  while [ "$(grep -l "$pattern" "$prefix"* 2>/dev/null | wc -l)" -lt "$n" ] && [ $i -lt $((limit * 10)) ]; do sleep 0.1; i=$((i + 1)); done; }
sum_field() { grep -h "$2" "$1"* | awk -v f="$3" '{s += $f} END {print s + 0}'; }
# The latest count of each client / server worker, summed.
progress() { for f in "$out"/client-"$1"-*; do grep -E "^(progress|established)" "$f" | tail -1; done 2>/dev/null | awk '{s+=$2} END {print s+0}'; }
accepted() { for f in "$out"/server-"$1"-*; do grep "^accepted" "$f" | tail -1; done | awk '{s+=$2} END {print s+0}'; }
# Kernel memory: slab bytes per cache, and the TCP buffer pages of /proc/net/sockstat.
# (printf %.0f: mawk prints large products in exponent form and clamps %d at 2^31.)
slab() { awk 'NR > 2 {printf "%s %.0f\n", $1, $3 * $4}' /proc/slabinfo | sort; }
unreclaimable() { awk '/^SUnreclaim:/ {print $2}' /proc/meminfo; }
# SLUB merges caches of one size: a cache is named with every name merged into it.
slab_name() { local target; target=$(readlink "/sys/kernel/slab/$1" 2>/dev/null) || { echo "$1"; return; }
  find /sys/kernel/slab -maxdepth 1 -type l -lname "$target" -printf '%f\n' | sort | paste -sd/; }
sockmem() { ip netns exec "$ns" awk '/^TCP:/ {print $NF}' /proc/net/sockstat; }

start_servers() { # $1: phase
  server_phase=$1
  mkfifo "$out/stop-servers-$1"; exec 3<>"$out/stop-servers-$1"
  for i in $(seq 1 $workers); do
    ip netns exec "$ns" dotnet "$bench" scale-server "$server" < "$out/stop-servers-$1" > "$out/server-$1-$i.log" 2>&1 &
  done
  wait_lines "$out/server-$1-" "$workers" listening 120
}
stop() { exec 3>&- 4>&-; sleep 1; for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; kill -CONT "$pid" 2>/dev/null || true; done; sleep 1; }

run_clients() { # $1 phase, $2 processes, $3 per process (the last gets the rest of $total), rest: launcher prefix
  local phase=$1 procs=$2 each=$3; shift 3
  mkfifo "$out/stop-clients-$phase"; exec 4<>"$out/stop-clients-$phase"
  local t0; t0=$(date +%s.%N)
  local attempted=$((procs * each))
  [ "$phase" = unpatched ] || attempted=$total
  for i in $(seq 1 "$procs"); do
    local n=$each; [ "$i" = "$procs" ] && n=$(( attempted - (procs - 1) * each ))
    ip netns exec "$ns" "$@" dotnet "$bench" scale-client "$server" "$n" < "$out/stop-clients-$phase" > "$out/client-$phase-$i.log" 2>&1 &
  done
  # Wait for every client's final line, watching the host's memory (bounded: 600 s).
  # (By the clock: under a load of 100 or more one pass of this loop takes seconds.)
  stopped=""; stopped_at=""
  local start=$SECONDS next=15
  while [ "$(grep -l established "$out/client-$phase-"* 2>/dev/null | wc -l)" -lt "$procs" ] && [ $((SECONDS - start)) -lt 600 ]; do
    if [ "$(avail)" -lt "$min_avail_kb" ]; then
      clients=$(for pid in $(ip netns pids "$ns"); do grep -q scale-client "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"; done)
      # shellcheck disable=SC2086
      kill -STOP $clients 2>/dev/null || true
      stopped_at=$(date +%s.%N)
      stopped="MemAvailable $(( $(avail) / 1024 )) MB, under the $(( min_avail_kb / 1024 )) MB floor; the clients were frozen and then killed"
      # What was established reaches the workers' accept queues; their count settles.
      local last=-1 now tries=0; now=$(accepted "$server_phase")
      while [ "$now" != "$last" ] && [ $tries -lt 20 ]; do last=$now; sleep 1.5; now=$(accepted "$server_phase"); tries=$((tries + 1)); done
      reached=$now
      clients_rss=$(for pid in $clients; do awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null; done | awk '{s+=$1} END {print s+0}')
      break
    fi
    if [ $((SECONDS - start)) -ge $next ]; then echo "  ... $((SECONDS - start)) s: $(progress "$phase") established, MemAvailable $(( $(avail) / 1024 )) MB, load $(cut -d' ' -f1 /proc/loadavg)"; next=$((next + 15)); fi
    sleep 0.2
  done
  local t1; t1=${stopped_at:-$(date +%s.%N)}
  elapsed=$(echo "$t1 - $t0" | bc)
  if [ -n "$stopped" ]; then established=$reached; else established=$(sum_field "$out/client-$phase-" established 2); fi
  errors=$( { grep -h established "$out/client-$phase-"* || true; } | sed -E 's/.*errors ([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
  echo "$phase: established $established of $attempted attempted in $(printf %.1f "$elapsed") s ($(echo "$established / $elapsed" | bc) connections/s) by $procs processes, errors $errors"
  { grep -h "first:" "$out/client-$phase-"* || true; } | sed -E 's/.*\(first: ([^)]*)\).*/  first error: \1/' | sort -u | head -2
  [ -z "$stopped" ] || echo "  STOPPED: $stopped; largest figure reached: $reached connections (the servers' accepted count)"
}

start_servers plain
run_clients unpatched 2 15000
stop

start_servers patched
sleep 2 # the workers' start-up settles before the kernel's baseline is taken
slab > "$out/slab0"; mem0=$(sockmem); avail0=$(avail); unrec0=$(unreclaimable)
# Each worker's last idle report: its accept loop has run (and been compiled) by then.
server_rss0=$(for f in "$out"/server-patched-*; do grep "^accepted" "$f" | tail -1; done | awk '{s+=$6} END {print s+0}')
run_clients sockshim "$procs" "$per" env SOCKSHIM_STATEDIR="$statedir" "$PWD/sockshim" run --pool "$pool" --
# The workers report every half second; give their accept queues a moment to drain.
for _ in $(seq 1 60); do [ "$(accepted patched)" -ge "$established" ] && break; sleep 0.5; done
sleep 1
slab > "$out/slab1"; mem1=$(sockmem); avail1=$(avail); unrec1=$(unreclaimable)
server_total=$(accepted patched)
server_rss1=$(for f in "$out"/server-patched-*; do grep "^accepted" "$f" | tail -1; done | awk '{s+=$6} END {print s+0}')
done_clients=$( { grep -l established "$out"/client-sockshim-* 2>/dev/null || true; } | wc -l)
echo "  distinct source addresses: $( { grep -h "^established" "$out"/client-sockshim-* || true; } | sed -E 's/.*distinct source addresses ([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')${stopped:+ (counted by the clients that finished before the stop: $done_clients)}"
echo "  the server workers accepted $server_total ($workers workers), errors $(for f in "$out"/server-patched-*; do grep "^accepted" "$f" | tail -1; done | awk '{s+=$4} END {print s+0}')"
n=$(( established > 0 ? established : 1 ))
if [ "$established" -gt 0 ]; then
  if [ -n "$stopped" ]; then
    awk -v r="$clients_rss" -v n="$n" 'BEGIN {printf "  memory per connection, client processes (frozen at the stop): private RSS %.0f B, their start-up included (%.0f MB in all)\n", r*1024/n, r/1024}'
  elif [ "$done_clients" -gt 0 ]; then
    grep -h "^established" "$out"/client-sockshim-* | sed -E 's/.* ([0-9]+) of .*, rss ([0-9]+) KB, rss after the first ([0-9]+) KB.*managed per connection ([0-9]+) B.*/\1 \2 \3 \4/' |
      awk '{c+=$1; r+=$2; r0+=$3; m+=$4*$1} END {printf "  memory per connection, client processes (%d): private RSS %.0f B (%.0f MB in all; %.0f MB before their connections), of it managed objects %.0f B\n", NR, (r-r0)*1024/c, r/1024, r0/1024, m/c}'
  fi
  awk -v r0="$server_rss0" -v r1="$server_rss1" -v n="$server_total" -v w="$workers" 'BEGIN {printf "  memory per connection, server workers (%d): private RSS %.0f B (%.0f MB in all; %.0f MB idle)\n", w, (r1-r0)*1024/(n>0?n:1), r1/1024, r0/1024}'
  join "$out/slab0" "$out/slab1" | awk '{d=$3-$2; t+=d; if (d > 0) printf "%.0f %s\n", d, $1} END {printf "%.0f total\n", t}' | sort -rn > "$out/slabd"
  top=$(grep -v 'total$' "$out/slabd" | head -7 | while read -r bytes name; do echo "$(slab_name "$name") $(( bytes / n ))"; done | paste -sd, | sed 's/,/, /g')
  echo "  memory per connection, kernel (both sockets of it): slab $(awk -v n="$n" '/total$/ {printf "%.0f", $1/n}' "$out/slabd") B, of it counted unreclaimable (SUnreclaim) $(( (unrec1 - unrec0) * 1024 / n )) B (by cache: $top); TCP buffer pages (sockstat mem) $(( (mem1 - mem0) * 4096 / n )) B"
  echo "  host: MemAvailable fell $(( (avail0 - avail1) / 1024 )) MB, $(( (avail0 - avail1) * 1024 / n )) B per connection (both ends, every process, the kernel); the claim table: $(du -k "$statedir"/*.leases 2>/dev/null | awk '{s+=$1} END {printf "%.0f MB", s/1024}') of /dev/shm, shared"
else
  echo "  no connection held: no memory per connection to measure"
fi
[ -r /proc/sys/net/netfilter/nf_conntrack_count ] && echo "  nf_conntrack entries in the run's namespace: $(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count)"
[ "$established" -ge "$total" ] && [ "$errors" = 0 ] && [ -z "$stopped" ] && echo "$total-connection target: MET ($established)" || echo "$total-connection target: MISSED ($established)"
stop
