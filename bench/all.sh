#!/usr/bin/env bash
# Every performance figure, each measured side by side in its own script and printed as a ratio
# next to its target. Root adds the figures that need a namespace (netlink, AnyIP, DHCP).
# Usage: bash bench/all.sh        (about 10 minutes; the scale run, up to a million connections, is bench/scale.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
echo "== BenchmarkDotNet: allocator, pool, DHCP wire"
dotnet run -c Release --project Tests/SockShim.Benchmarks 2>&1 | sed -n '/^figure /,$p'
echo "== allocator: threads and processes on one table, duplicates checked"
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
dotnet build Tests/SockShim.Bench -c Release -nologo -v q -o "$out" > /dev/null 2>&1
for a in "1 1" "16 1" "1 4"; do set -- $a; dotnet "$out/SockShim.Bench.dll" allocator 3 "$1" "$2"; done
echo "== provisioners: acquire+release per socket"
bash bench/provisioners.sh 200000 5000 | tail -n +2
echo "== launcher: start-up and connect+close"
bash bench/launcher.sh 21 20000
echo "== data path"
bash bench/bulk.sh 3
if [ "$(id -u)" = 0 ]; then
  echo "== DHCP: time per lease against dnsmasq"
  bash bench/dhcp.sh 200 | tail -n +2
fi
