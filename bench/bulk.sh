#!/usr/bin/env bash
# Data path: throughput of one loopback TCP connection, unpatched and under `sockshim run`
# (its client socket has its own address), alternating, median of 5 each (target >= 0.98x).
# Usage: bash bench/bulk.sh [seconds=3]
set -euo pipefail
secs=${1:-3}
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out/bench" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
./sockshim prepare > /dev/null
bench="$out/bench/SockShim.Bench.dll"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for _ in 1 2 3 4 5; do
  dotnet "$bench" bulk "$secs" | awk '{print $2}' >> "$out/plain"
  ./sockshim run -- dotnet "$bench" bulk "$secs" | tee -a "$out/from" | awk '{print $2}' >> "$out/patched"
done
p=$(median < "$out/plain"); w=$(median < "$out/patched")
awk -v p="$p" -v w="$w" 'BEGIN { printf "bulk throughput, one connection (median of 5): plain %d MB/s, under SockShim %d MB/s, ratio %.3fx (target >= 0.98x) %s\n", p, w, w/p, (w/p >= 0.98 ? "MET" : "MISSED") }'
echo "  patched connections came from $(awk '{print $NF}' "$out/from" | cut -d: -f1 | sort -u | tr '\n' ' ')"
