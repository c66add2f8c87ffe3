#!/usr/bin/env bash
# Launcher overhead, measured side by side in one run and printed as ratios next to targets:
#   start-up of a small app that opens one socket, started as `sockshim run` starts it (its variables,
#   and its runtimeconfig copy with startup hooks off: the woven System.Net.Sockets, wired at that
#   socket; no startup hook) vs plain (target
#   <= 1.02x); the whole command a user types, `./sockshim run -- dotnet app.dll` and
#   `./sockshim run -- ./apphost` (proved too: started from its overlay, no startup hook), vs the
#   plain command (target <= 1.10x); and per-connection
#   connect+close on loopback under `sockshim run --mode all` (every connection gets its own
#   address) vs unpatched, warm (target <= 1.05x) and cold, the first 10,000 of a fresh
#   process (target <= 1.05x). And the same app published self-contained, under `sockshim run`
#   (started from its overlay in the cache, after a first run made it) against plain, printed next
#   to the framework-dependent apphost's ratio. Run as root, the whole `dotnet app.dll` command
#   is also timed as an ordinary account (nobody, with a cache of its own), which pays none of
#   root's checks of the clone and the launcher's directory. And under port pressure: 20,000 sequential
#   connect+close to one server port from a fresh process, closed gracefully so TIME_WAIT fills the
#   ephemeral range, each run in a network namespace of its own (root; otherwise after waiting for
#   the host's TIME_WAIT to drain), under SockShim vs unpatched (target <= 0.55x).
# Usage: bash bench/launcher.sh [runs=21] [connections=20000] [all|port-pressure]
set -euo pipefail
runs=${1:-21}
conns=${2:-20000}
only=${3:-all}
case "$only" in all|port-pressure) ;; *) echo "bench/launcher.sh: third argument '$only' is not a section: use all or port-pressure" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dotnet build Examples/LegacyApp -c Release -nologo -v q -o "$out/app" > "$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
./sockshim prepare > /dev/null
app="$out/app/LegacyApp.dll"
if [ "$only" = all ]; then
  dotnet publish Examples/LegacyApp -c Release -r linux-x64 --self-contained true -nologo -v q -o "$out/sc" > "$out/build3.log" 2>&1 || { cat "$out/build3.log"; exit 1; }
  ./sockshim prepare "$out/sc/LegacyApp" > /dev/null # the first (caching) run's work: the overlay
fi

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The floor any startup hook pays here: one that does nothing.
if [ "$only" = all ]; then
  mkdir -p "$out/empty"
  printf '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup></Project>\n' > "$out/empty/empty.csproj"
  echo 'internal static class StartupHook { public static void Initialize() { } }' > "$out/empty/Hook.cs"
  dotnet publish "$out/empty" -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true -nologo -v q -o "$out/empty/bin" > "$out/build2.log" 2>&1 || { cat "$out/build2.log"; exit 1; }
fi

# The variables `sockshim run` sets for this very command and the runtimeconfig copy it starts the
# app from (its --verbose lists both), applied directly, so the launcher's own start-up is not
# counted in the app's (it is reported on its own line below): for a proved `dotnet app.dll`, the
# start without a startup hook.
env_file="$out/env"
./sockshim run --verbose -- dotnet "$app" --start 2>"$out/verbose" >/dev/null
sed -n 's/^sockshim: \([A-Z_][A-Z0-9_]*\)=\(.*\)$/export \1='"'"'\2'"'"'/p' "$out/verbose" | grep -v "^export SOCKSHIM_LOG=" > "$env_file" # --verbose's own debug log is not the app's
rc=$(sed -n 's/^sockshim: command: .* --runtimeconfig \([^ ]*\) .*$/\1/p' "$out/verbose")
grep -q "SOCKSHIM_WIRE=" "$env_file" && [ -n "$rc" ] || { echo "sockshim run did not choose the start without a startup hook:" >&2; grep "start:\|command:" "$out/verbose" >&2; exit 1; }
# The framework-dependent apphost, proved the same way, starts from its overlay in the cache
# (made by this first run) without a startup hook.
./sockshim run --verbose -- "$out/app/LegacyApp" --start 2> "$out/verbose-host" > /dev/null
grep -q "^sockshim: start: no startup hook" "$out/verbose-host" || { echo "sockshim run did not start the apphost without a startup hook:" >&2; grep "start:\|command:" "$out/verbose-host" >&2; exit 1; }

port_pressure() {
  # One fresh process in a drained TCP table: a network namespace of its own (its TIME_WAIT goes
  # with it), or, without root, the host's after its TIME_WAIT has drained (bounded).
  drained() {
    if [ "$(id -u)" = 0 ]; then
      local ns="sspp$$"
      ip netns add "$ns"; ip -n "$ns" link set lo up
      ip netns exec "$ns" bash -c "$1" || { ip netns del "$ns"; return 1; }
      ip netns del "$ns"
    else
      local i=0
      while [ "$(ss -tan state time-wait | wc -l)" -gt 100 ] && [ $i -lt 90 ]; do sleep 1; i=$((i + 1)); done
      [ $i -lt 90 ] || echo "  (TIME_WAIT still $(ss -tan state time-wait | wc -l) after 90 s)" >&2
      bash -c "$1"
    fi
  }
  local n=20000 rounds=5 i
  : > "$out/tplain"; : > "$out/twoven"; : > "$out/tbare"
  local loads=""
  for i in $(seq $rounds); do
    loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
    drained "dotnet '$app' --connect-loop $n --cold --time-wait" | awk '{print $2}' >> "$out/tplain"
    drained "source '$env_file'; dotnet exec --runtimeconfig '$rc' '$app' --connect-loop $n --cold --time-wait" | awk '{print $2}' >> "$out/twoven"
    drained "dotnet '$app' --connect-loop $n --cold --time-wait --bind-distinct" | awk '{print $2}' >> "$out/tbare"
  done
  local tp tw tb; tp=$(median < "$out/tplain"); tw=$(median < "$out/twoven"); tb=$(median < "$out/tbare")
  echo "  port pressure, per round (us): unpatched $(awk '{printf "%.1f ", $1/1000}' "$out/tplain")/ SockShim $(awk '{printf "%.1f ", $1/1000}' "$out/twoven")/ by hand $(awk '{printf "%.1f ", $1/1000}' "$out/tbare"); load$loads"
  awk -v p="$tp" -v w="$tw" -v n="$n" -v r="$rounds" 'BEGIN { printf "connect+close under port pressure (median of %d interleaved rounds, each a fresh process x %d to one port, graceful close, TIME_WAIT drained before each): unpatched %.1f us, under SockShim %.1f us, ratio %.3fx (target <= 0.55x) %s\n", r, n, p/1000, w/1000, w/p, (w/p <= 0.55 ? "MET" : "MISSED") }'
  awk -v p="$tp" -v b="$tb" -v w="$tw" 'BEGIN { printf "  the kernel floor: each socket bound to a distinct address by hand, no SockShim: %.1f us (%.3fx); SockShim itself: %.1f us per connection\n", b/1000, b/p, (w-b)/1000 }'
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), .NET $(dotnet --list-runtimes | awk '/NETCore.App/ {v=$2} END {print v}'), $(date -u +%F)"
if [ "$only" = port-pressure ]; then port_pressure; exit 0; fi
# As root, the same whole command as an ordinary account (nobody, with a home and cache of its
# own): the clone's script then forks no `stat` of the directories above the clone, and the
# launcher walks no directory of its own. Both sides run under setpriv (one exec more each).
as_user=()
if [ "$only" = all ] && [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
  chmod 755 "$out"; mkdir -p "$out/home" "$out/nuget"; chown 65534:65534 "$out/home"
  # crossgen2 as root restored it (NuGet extracts it 0744): the account needs no restore of its own.
  cp -r "${NUGET_PACKAGES:-$HOME/.nuget/packages}/microsoft.netcore.app.crossgen2.linux-x64" "$out/nuget/" 2> /dev/null || true
  chmod -R a+rX "$out/nuget"
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups env -u SOCKSHIM_CACHE HOME="$out/home" XDG_CACHE_HOME= NUGET_PACKAGES="$out/nuget")
  if "${as_user[@]}" test -x ./sockshim -a -r .artifacts/sockshim/sockshim; then
    "${as_user[@]}" ./sockshim prepare > /dev/null
    "${as_user[@]}" ./sockshim run --verbose -- dotnet "$app" --start 2> "$out/verbose-user" > /dev/null
    grep -q "^sockshim: start: no startup hook" "$out/verbose-user" || { echo "as nobody, sockshim run did not choose the start without a startup hook:" >&2; cat "$out/verbose-user" >&2; exit 1; }
  else
    echo "(not measured as an ordinary account: nobody cannot reach the clone at $PWD)"
    as_user=()
  fi
fi
for i in $(seq 3); do dotnet "$app" --start; (source "$env_file"; dotnet exec --runtimeconfig "$rc" "$app" --start); "$out/sc/LegacyApp" --start; ./sockshim run -- "$out/sc/LegacyApp" --start; ./sockshim run -- "$out/app/LegacyApp" --start; done # warm the page cache
: > "$out/plain"; : > "$out/woven"; : > "$out/wrapped"; : > "$out/emptyhook"; : > "$out/plainhost"; : > "$out/wrappedhost"; : > "$out/plainsc"; : > "$out/wrappedsc"; : > "$out/plainuser"; : > "$out/wrappeduser"
for i in $(seq "$runs"); do
  t0=$(now); dotnet "$app" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/plain"
  t0=$(now); (source "$env_file"; dotnet exec --runtimeconfig "$rc" "$app" --start); t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/woven"
  t0=$(now); ./sockshim run -- dotnet "$app" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/wrapped"
  t0=$(now); DOTNET_STARTUP_HOOKS="$out/empty/bin/empty.dll" dotnet "$app" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/emptyhook"
  t0=$(now); "$out/app/LegacyApp" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/plainhost"
  t0=$(now); ./sockshim run -- "$out/app/LegacyApp" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/wrappedhost"
  t0=$(now); "$out/sc/LegacyApp" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/plainsc"
  t0=$(now); ./sockshim run -- "$out/sc/LegacyApp" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/wrappedsc"
  if [ ${#as_user[@]} -gt 0 ]; then
    t0=$(now); "${as_user[@]}" dotnet "$app" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/plainuser"
    t0=$(now); "${as_user[@]}" ./sockshim run -- dotnet "$app" --start; t1=$(now); echo $(( (t1 - t0) / 1000 )) >> "$out/wrappeduser"
  fi
done
plain=$(median < "$out/plain"); woven=$(median < "$out/woven"); wrapped=$(median < "$out/wrapped"); empty=$(median < "$out/emptyhook")
plainhost=$(median < "$out/plainhost"); wrappedhost=$(median < "$out/wrappedhost"); plainsc=$(median < "$out/plainsc"); wrappedsc=$(median < "$out/wrappedsc")
awk -v p="$plain" -v w="$woven" -v r="$runs" 'BEGIN { printf "start-up (median of %d): plain %.1f ms, with SockShim %.1f ms, ratio %.3fx (target <= 1.02x) %s\n", r, p/1000, w/1000, w/p, (w/p <= 1.02 ? "MET" : "MISSED") }'
awk -v p="$plain" -v e="$empty" 'BEGIN { printf "  of which any startup hook: an empty one costs %.1f ms (%.3fx)\n", e/1000, e/p }'
awk -v p="$plain" -v w="$wrapped" 'BEGIN { printf "the whole command `./sockshim run -- dotnet app.dll` against `dotnet app.dll`: %.1f ms against %.1f ms, %.2fx (target <= 1.10x) %s\n", w/1000, p/1000, w/p, (w/p <= 1.10 ? "MET" : "MISSED") }'
if [ ${#as_user[@]} -gt 0 ]; then
  plainuser=$(median < "$out/plainuser"); wrappeduser=$(median < "$out/wrappeduser")
  awk -v p="$plainuser" -v w="$wrappeduser" 'BEGIN { printf "  the same as an ordinary account (nobody, under setpriv both): %.1f ms against %.1f ms, %.2fx (target <= 1.10x) %s\n", w/1000, p/1000, w/p, (w/p <= 1.10 ? "MET" : "MISSED") }'
fi
awk -v p="$plainhost" -v w="$wrappedhost" 'BEGIN { printf "the whole command `./sockshim run -- ./apphost` (from its overlay, no startup hook) against `./apphost`: %.1f ms against %.1f ms, %.2fx (target <= 1.10x) %s\n", w/1000, p/1000, w/p, (w/p <= 1.10 ? "MET" : "MISSED") }'
awk -v p="$plainsc" -v w="$wrappedsc" -v fp="$plainhost" -v fw="$wrappedhost" 'BEGIN { printf "self-contained: `./sockshim run -- ./apphost` (from its overlay, cached) against `./apphost`: %.1f ms against %.1f ms, %.2fx (framework-dependent apphost above: %.2fx)\n", w/1000, p/1000, w/p, fw/fp }'

: > "$out/cplain"; : > "$out/cwoven"; : > "$out/cbare"
for i in 1 2 3 4 5; do
  dotnet "$app" --connect-loop "$conns" | awk '{print $2}' >> "$out/cplain"
  (source "$env_file"; dotnet exec --runtimeconfig "$rc" "$app" --connect-loop "$conns") | awk '{print $2}' >> "$out/cwoven"
  dotnet "$app" --connect-loop "$conns" --bind-distinct | awk '{print $2}' >> "$out/cbare"
done
cp=$(median < "$out/cplain"); cw=$(median < "$out/cwoven"); cb=$(median < "$out/cbare")
awk -v p="$cp" -v w="$cw" -v n="$conns" 'BEGIN { printf "connect+close (median of 5 x %d): plain %.1f us, under SockShim (mode all, own address each) %.1f us, ratio %.3fx (target <= 1.05x) %s\n", n, p/1000, w/1000, w/p, (w/p <= 1.05 ? "MET" : "MISSED") }'
awk -v p="$cp" -v b="$cb" -v w="$cw" 'BEGIN { printf "  of which the kernel: binding each socket to a distinct address by hand, no SockShim: %.1f us (%.3fx); SockShim itself: %.1f us per connection\n", b/1000, b/p, (w-b)/1000 }'

# Cold: a fresh process, its first 10,000 connections, no warm-up (a short-lived crawler or
# load generator pays this); RST on close leaves no TIME_WAIT between runs.
: > "$out/kplain"; : > "$out/kwoven"; : > "$out/kbare"; : > "$out/fplain"; : > "$out/fwoven"
for i in 1 2 3 4 5; do
  dotnet "$app" --connect-loop 10000 --cold | awk '{print $2}' >> "$out/kplain"
  (source "$env_file"; dotnet exec --runtimeconfig "$rc" "$app" --connect-loop 10000 --cold) | awk '{print $2}' >> "$out/kwoven"
  dotnet "$app" --connect-loop 10000 --cold --bind-distinct | awk '{print $2}' >> "$out/kbare"
  # The first connection alone: where SockShim builds its stack (settings, pools, table).
  dotnet "$app" --connect-loop 1 --cold | awk '{print $2}' >> "$out/fplain"
  (source "$env_file"; dotnet exec --runtimeconfig "$rc" "$app" --connect-loop 1 --cold) | awk '{print $2}' >> "$out/fwoven"
done
kp=$(median < "$out/kplain"); kw=$(median < "$out/kwoven"); kb=$(median < "$out/kbare"); fp=$(median < "$out/fplain"); fw=$(median < "$out/fwoven")
awk -v p="$kp" -v w="$kw" 'BEGIN { printf "connect+close cold (median of 5 fresh processes x 10000, no warm-up): plain %.1f us, under SockShim %.1f us, ratio %.3fx (target <= 1.05x) %s\n", p/1000, w/1000, w/p, (w/p <= 1.05 ? "MET" : "MISSED") }'
awk -v p="$kp" -v b="$kb" 'BEGIN { printf "  of which the kernel: a distinct address bound by hand, cold, no SockShim: %.1f us (%.3fx)\n", b/1000, b/p }'
awk -v p="$fp" -v w="$fw" 'BEGIN { printf "  the first connection of a fresh process (median of 5): plain %.1f ms, under SockShim %.1f ms (its stack is built there)\n", p/1e6, w/1e6 }'

port_pressure
