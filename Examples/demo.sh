#!/usr/bin/env bash
# The main job on the embedded default: an echo server on 127.0.0.1 and a client whose N
# connections are each asked for with AF_INET_TUPLE. The server reports every peer's source
# address and how many distinct ones it saw: N, all from the loopback pool 127.100.0.0/16.
# No root, no configuration. Usage: bash Examples/demo.sh [N]
set -euo pipefail
n=${1:-20}
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "error: the .NET 10 SDK (dotnet) is needed on PATH" >&2; exit 1; }
out=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT

echo "building the examples..."
dotnet build Examples/EchoServer -c Release -nologo -v q -o "$out/server" >/dev/null
dotnet build Examples/TupleClient -c Release -nologo -v q -o "$out/client" >/dev/null

dotnet "$out/server/EchoServer.dll" --listen 127.0.0.1:0 --expect "$n" --timeout 60 --ready-file "$out/ready" > "$out/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$out/ready" ] && break; sleep 0.1; done
[ -s "$out/ready" ] || { echo "error: the echo server did not start" >&2; cat "$out/server.log" >&2; exit 1; }

echo "client: $n TCP connections to $(cat "$out/ready"), each socket AF_INET_TUPLE"
dotnet "$out/client/TupleClient.dll" --server "$(cat "$out/ready")" --count "$n" | tail -n 3
wait "$server" || true
echo "server saw:"
grep ' peer ' "$out/server.log" | head -n 5
[ "$n" -gt 5 ] && echo "  ..."
tail -n 1 "$out/server.log"
