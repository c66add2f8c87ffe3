#!/usr/bin/env bash
# The main job on the embedded default (the loopback pool 127.100.0.0/16; no root, no
# configuration). An echo server on 127.0.0.1 reports every peer's source address, then how
# many distinct ones it saw. Two clients talk to it:
#   1. new code: TupleClient opens N connections, each socket created with AF_INET_TUPLE;
#   2. an unmodified app: LegacyApp (no reference to SockShim) run under `sockshim run`,
#      using raw Socket (sync, Task, SocketAsyncEventArgs, Begin/End), TcpClient, UdpClient
#      and HttpClient: 11 sockets.
# Every one of the N + 11 sockets arrives from its own address.   Usage: bash Examples/demo.sh [N]
set -euo pipefail
n=${1:-20}
cd "$(dirname "$0")/.."
command -v dotnet >/dev/null || { echo "error: the .NET 10 SDK (dotnet) is needed on PATH" >&2; exit 1; }
case "$n" in ''|*[!0-9]*) echo "error: N must be a whole number of connections, such as 20 (got '$n')" >&2; exit 2;; esac
out=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$out"' EXIT

echo "building the examples and the sockshim tool..."
for p in EchoServer TupleClient LegacyApp; do
  dotnet build "Examples/$p" -c Release -nologo -v q -clp:NoSummary -o "$out/$p" >/dev/null
done
./sockshim prepare >/dev/null

legacy_apis=11
dotnet "$out/EchoServer/EchoServer.dll" --listen 127.0.0.1:0 --expect $((n + legacy_apis)) --timeout 120 --ready-file "$out/ready" > "$out/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$out/ready" ] && break; sleep 0.1; done
[ -s "$out/ready" ] || { echo "error: the echo server did not start" >&2; cat "$out/server.log" >&2; exit 1; }
target=$(cat "$out/ready")

echo
echo "1) new code: $n TCP connections to $target, each socket AF_INET_TUPLE"
dotnet "$out/TupleClient/TupleClient.dll" --server "$target" --count "$n" | tail -n 2
echo
echo "2) an unmodified app under: ./sockshim run -- dotnet LegacyApp.dll $target"
./sockshim run -- dotnet "$out/LegacyApp/LegacyApp.dll" "$target"
# The server exits 1 when it served fewer than it expected (by its timeout): so does the demo.
server_status=0
wait "$server" || server_status=$?
server=""
echo
echo "the server saw (first 5 and last 3 of $((n + legacy_apis))):"
grep ' peer ' "$out/server.log" | head -n 5
echo "  ..."
grep ' peer ' "$out/server.log" | tail -n 3
tail -n 1 "$out/server.log"
if [ "$server_status" != 0 ]; then
  echo "error: the echo server served fewer than the $((n + legacy_apis)) connections and datagrams it expected (exit $server_status)" >&2
  exit 1
fi
