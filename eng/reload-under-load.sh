#!/usr/bin/env bash
# Zero-downtime check: serves the sample with 2 workers, puts bounded loopback load on it (16 keep-alive
# and 16 new-connection clients for 24 s) and meanwhile reloads twice: once with `kestrel-cluster reload`,
# once with SIGHUP. Prints the load totals; exits non-zero if any request failed or a reload did not happen.
# BALANCE=shared (or another --balance mode) checks that mode.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build KestrelCluster.sln -c Release -nologo -v q >/dev/null
dotnet build eng/load -c Release -nologo -v q >/dev/null
export XDG_RUNTIME_DIR=$(mktemp -d /tmp/kc-eng-XXXXXX)
log=$XDG_RUNTIME_DIR/cluster.log
kc="dotnet src/KestrelCluster.Supervisor/bin/Release/net10.0/kestrel-cluster.dll"
$kc run -n reload-check -w 2 --balance "${BALANCE:-round-robin}" --urls http://127.0.0.1:0 -- dotnet samples/HelloCluster/bin/Release/net10.0/HelloCluster.dll >"$log" 2>&1 &
supervisor=$!
trap 'kill -9 $supervisor 2>/dev/null || true; pkill -9 -f "HelloCluster/bin/Release/net10.0/HelloCluster.dll" 2>/dev/null || true; rm -rf "$XDG_RUNTIME_DIR"' EXIT
for _ in $(seq 1 300); do grep -q "All 2 workers ready" "$log" && break; sleep 0.1; done
port=$(grep -o 'Listening on 127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
dotnet eng/load/bin/Release/net10.0/KestrelCluster.Load.dll "http://127.0.0.1:$port/" 24 16 16 &
load=$!
sleep 4
$kc reload -n reload-check
sleep 6
kill -HUP $supervisor
for _ in $(seq 1 300); do [ "$(grep -c 'Reload complete' "$log")" -ge 2 ] && break; sleep 0.1; done
wait $load; status=$?
grep -E "Reload|exited" "$log" || true
$kc stop -n reload-check
[ "$(grep -c 'Reload complete' "$log")" -ge 2 ] && exit $status
echo "a reload did not complete" >&2; exit 1
