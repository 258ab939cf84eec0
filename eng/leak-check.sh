#!/usr/bin/env bash
# Leak check: serves the sample with 2 workers, warms up, records the supervisor's and each worker's open fds
# (/proc/<pid>/fd) and VmRSS, then passes N connections (default 1,000,000) through the cluster in chunks of
# 100,000 (each ~20 s of loopback load, with a pause between) and prints the same figures after every chunk,
# once the fd counts have settled. fds leave out the assemblies the runtime loads lazily and keeps open (they
# appear over time even when idle); sockets are counted apart. Exits non-zero if a connection failed, or a
# socket or fd count ends above its idle value.
#   eng/leak-check.sh [connections=1000000] [chunk=100000]
total=${1:-1000000}
chunk=${2:-100000}
source "$(dirname "$0")/cluster-script.sh"
churn="$load_tool churn"
start_cluster leak-check 2 60
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
