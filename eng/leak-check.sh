#!/usr/bin/env bash
# Leak check: serves the sample with 2 workers, warms up, records the supervisor's and each worker's open fds
# (/proc/<pid>/fd) and VmRSS, then passes N connections (default 1,000,000) through the cluster in chunks of
# 100,000 (each ~20 s of loopback load, with a pause between) and prints the same figures after every chunk,
# once the fd counts have settled. fds leave out the assemblies the runtime loads lazily and keeps open (they
# appear over time even when idle); sockets are counted apart. Exits non-zero if a connection failed, or a
# socket or fd count ends above its idle value.
#   eng/leak-check.sh [connections=1000000] [chunk=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-1000000}
chunk=${2:-100000}
dotnet build src/KestrelCluster.Supervisor -c Release -nologo -v q >/dev/null
dotnet build samples/HelloCluster -c Release -nologo -v q >/dev/null
dotnet build eng/load -c Release -nologo -v q >/dev/null
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/kc-eng-XXXXXX)
log=$XDG_RUNTIME_DIR/cluster.log
kc="dotnet src/KestrelCluster.Supervisor/bin/Release/net10.0/kestrel-cluster.dll"
churn="dotnet eng/load/bin/Release/net10.0/KestrelCluster.Load.dll churn"
$kc run -n leak-check -w 2 --urls http://127.0.0.1:0 -- dotnet samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll >"$log" 2>&1 &
supervisor=$!
trap 'for p in $(pgrep -P $supervisor 2>/dev/null); do kill -9 $p 2>/dev/null || true; done; kill -9 $supervisor 2>/dev/null || true; rm -rf "$XDG_RUNTIME_DIR"' EXIT
for _ in $(seq 1 600); do grep -qs "All 2 workers ready" "$log" && break; sleep 0.1; done
port=$(grep -o 'Listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
pids="$supervisor $(pgrep -P $supervisor | tr '\n' ' ')"

# Assemblies the runtime loads lazily (and keeps open) are left out: they are not per connection.
fds() { for p in $pids; do ls -l /proc/$p/fd | tail -n +2 | grep -vc '\.dll$'; done | tr '\n' ' '; }
socks() { for p in $pids; do ls -l /proc/$p/fd 2>/dev/null | grep -c 'socket:' ; done | tr '\n' ' '; }
rss() { for p in $pids; do awk '/VmRSS/ {printf "%.1f ", $2/1024}' /proc/$p/status; done; }
# Waits (up to 30 s) until the fd counts hold still for a second.
settle() { local a b; a=$(fds); for _ in $(seq 1 30); do sleep 1; b=$(fds); [ "$a" = "$b" ] && break; a=$b; done; echo "$b"; }

$churn "$port" 20000 16 >/dev/null
idle_fds=$(settle); idle_rss=$(rss); idle_socks=$(socks)
echo "pids (supervisor, workers): $pids"
echo "idle:               fds $idle_fds sockets $idle_socks VmRSS MiB $idle_rss"
done_count=0; status=0
while [ "$done_count" -lt "$total" ]; do
  n=$(( total - done_count < chunk ? total - done_count : chunk ))
  out=$($churn "$port" "$n" 16) || status=1
  done_count=$(( done_count + n ))
  now_fds=$(settle)
  now_socks=$(socks)
  printf "after %8d conns: fds %s sockets %s VmRSS MiB %s  (%s)\n" "$done_count" "$now_fds" "$now_socks" "$(rss)" "$out"
done
i=0
for p in $pids; do
  i=$((i+1)); f() { echo $1 | cut -d' ' -f$i; }
  [ "$(f "$now_socks")" -le "$(f "$idle_socks")" ] || { echo "pid $p: $(f "$idle_socks") sockets idle, $(f "$now_socks") after" >&2; status=1; }
  [ "$(f "$now_fds")" -le "$(f "$idle_fds")" ] || { echo "pid $p: $(f "$idle_fds") fds idle, $(f "$now_fds") at the end" >&2; status=1; }
done
echo "workers restarted meanwhile: $(grep -c 'exited' "$log" || true); connections the supervisor expired: $(grep -c 'Closed .* connections that waited' "$log" || true)"
$kc stop -n leak-check >/dev/null
exit $status
